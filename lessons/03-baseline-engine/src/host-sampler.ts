// Sampling with the random numbers drawn on the host: each request has its own
// seeded generator, and one draw per token decides it. Greedy rows and rows
// sampled from softmax(logits / temperature) are resolved on the device at
// those draws (ops.sampleRows: argmax or an inverse-CDF pick), so only the
// token ids come back, 4 bytes a row instead of the vocabulary's 600 KB. Rows
// with top-k or top-p read their logits row back and are drawn here, after a
// sort. Lesson 12 moves the filters, the generator and log-probabilities onto
// the GPU.
import { Tensor, ops } from '@aios/engine-core';
import type { SampleResult, Sampler } from '@aios/engine-core/engine/types.ts';
import type { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { mulberry32 } from '@aios/engine-core/random.ts';

// One scratch row, reused by every call: no allocation per sampled token.
let weightsScratch = new Float64Array(0);

/** Draws one token id from a logits row with temperature, top-k and top-p. */
export function sampleRow(row: Float32Array, temperature: number, topK: number, topP: number, random: () => number): number {
  if (topK === 0 && topP >= 1) {
    // No truncation: one pass for the max, one to exponentiate and sum, one to draw. O(vocab), no sort.
    let max = -Infinity;
    for (const v of row) if (v > max) max = v;
    if (weightsScratch.length < row.length) weightsScratch = new Float64Array(row.length);
    const w = weightsScratch;
    let total = 0;
    for (let i = 0; i < row.length; i++) total += w[i] = Math.exp((row[i]! - max) / temperature);
    let r = random() * total;
    for (let i = 0; i < row.length; i++) {
      r -= w[i]!;
      if (r <= 0) return i;
    }
    return row.length - 1;
  }
  let order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]!);
  if (topK > 0) order = order.slice(0, topK);
  const max = row[order[0]!]!;
  const weights = order.map((i) => Math.exp((row[i]! - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    let acc = 0, keep = 0;
    while (keep < order.length && acc < topP * total) acc += weights[keep++]!;
    order = order.slice(0, keep);
    weights.length = keep;
  }
  const kept = weights.reduce((a, b) => a + b, 0);
  let r = random() * kept;
  for (let i = 0; i < order.length; i++) {
    r -= weights[i]!;
    if (r <= 0) return order[i]!;
  }
  return order[order.length - 1]!;
}

export class HostSampler implements Sampler {
  private readonly generators = new Map<number, () => number>();

  /** Min-p, the penalties and log-probs come with lesson 12's sampler. */
  unsupported(params: SamplingParams): string | undefined {
    const asked = [
      params.minP > 0 && 'minP',
      params.repetitionPenalty !== 1 && 'repetitionPenalty',
      params.presencePenalty !== 0 && 'presencePenalty',
      params.frequencyPenalty !== 0 && 'frequencyPenalty',
      params.logprobs !== undefined && 'logprobs',
    ].filter(Boolean);
    return asked.length ? `this lesson's sampler (lesson 03's HostSampler) has no ${asked.join(', ')}; lesson 12's GPU sampler does` : undefined;
  }

  sample(logits: Tensor, sequences: readonly Sequence[]): SampleResult {
    const rows = sequences.length;
    // Per row: the temperature (0 = greedy) and, for a sampled row, one draw from its request's generator.
    const host = new Float32Array(2 * rows);
    const truncated: number[] = [];
    sequences.forEach((seq, i) => {
      const p = seq.params;
      if (p.greedy) return;
      if (p.topK > 0 || p.topP < 1) truncated.push(i);
      else {
        host[i] = p.temperature;
        host[rows + i] = this.generator(seq)();
      }
    });
    // Greedy and plain temperature rows: drawn where the logits are, only the ids come back.
    const params = Tensor.fromArray(host, [2, rows], { dtype: 'f32', device: logits.device });
    const ids = ops.sampleRows(logits, params.select(0, 0), params.select(0, 1));
    // Top-k / top-p rows need the sorted row on the host: their rows are gathered now, queued
    // behind the draw, so the step waits for the device once.
    const idx = truncated.length ? Tensor.fromArray(Int32Array.from(truncated), [truncated.length], { dtype: 'i32', device: logits.device }) : undefined;
    const picked = idx ? ops.gatherRows(logits, idx) : undefined;
    try {
      const tokens = Array.from(ids.toArray() as Int32Array);
      if (picked) {
        const V = logits.shape[1]!;
        const values = picked.toArray() as Float32Array;
        truncated.forEach((i, k) => {
          const p = sequences[i]!.params;
          tokens[i] = sampleRow(values.subarray(k * V, (k + 1) * V), p.temperature, p.topK, p.topP, this.generator(sequences[i]!));
        });
      }
      return { tokens };
    } finally {
      for (const t of [ids, params, picked, idx]) t?.dispose();
    }
  }

  /** The engine calls this when a sequence finishes (or is aborted): its stream goes. */
  release(seq: Sequence): void {
    this.generators.delete(seq.id);
  }

  /** One stream per request, seeded by its seed (or its id): the same seed gives the same tokens whatever runs beside it. */
  private generator(seq: Sequence): () => number {
    let gen = this.generators.get(seq.id);
    if (!gen) {
      gen = mulberry32(seq.params.seed ?? seq.id * 2654435761);
      this.generators.set(seq.id, gen);
    }
    return gen;
  }
}
