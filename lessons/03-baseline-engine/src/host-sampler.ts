// Sampling on the host: greedy requests take the argmax on the device (4 bytes
// come back); sampled requests read their logits row back and draw from
// softmax(logits / temperature) after top-k and top-p, with a seeded generator
// per request. Lesson 12 moves all of this onto the GPU.
import { ops } from '@aios/engine-core';
import type { Tensor } from '@aios/engine-core';
import type { Sampler } from '@aios/engine-core/engine/types.ts';
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

  sample(logits: Tensor, sequences: readonly Sequence[]): number[] {
    if (sequences.every((s) => s.params.greedy)) {
      const best = ops.argmax(logits);
      try {
        return Array.from(best.toArray() as Int32Array);
      } finally {
        best.dispose();
      }
    }
    const V = logits.shape[1]!;
    const rows = logits.toArray() as Float32Array;
    return sequences.map((seq, i) => {
      const row = rows.subarray(i * V, (i + 1) * V);
      const p = seq.params;
      if (p.greedy) return argmaxRow(row);
      let gen = this.generators.get(seq.id);
      if (!gen) {
        gen = mulberry32(p.seed ?? seq.id * 2654435761); // one stream per request
        this.generators.set(seq.id, gen);
      }
      return sampleRow(row, p.temperature, p.topK, p.topP, gen);
    });
  }

  /** The engine calls this when a sequence finishes (or a deadline stops it): its stream goes. */
  release(seq: Sequence): void {
    this.generators.delete(seq.id);
  }
}

function argmaxRow(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
