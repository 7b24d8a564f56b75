// Sampling where the logits are: every filter, the penalties and the random
// numbers run on the device (ops.sampleTokens), so a step uploads one packed
// buffer (each row's parameters, and the penalty entries of the rows that
// have penalties) and reads back only the chosen ids, plus the log-probs of
// the rows that asked. Lesson 03's HostSampler read a top-k/top-p row's whole
// logits back and drew from a host generator; here nothing per vocabulary
// entry crosses the bus and no JS loop runs over the vocabulary.
import { type Device, Tensor, ops } from '@aios/engine-core';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';
import type { SampledLogprobs, SampleResult, Sampler, StagedSample } from '@aios/engine-core/engine/types.ts';
import type { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';

/**
 * The Philox key of a request: its seed, or, for a request without one, a number
 * derived from its id (as lesson 03's HostSampler seeds its streams), so two
 * unseeded requests draw different tokens.
 */
export function requestSeed(seq: Sequence): number {
  return seq.params.seed ?? Math.imul(seq.id, 0x9e3779b1) >>> 0; // exact for any id (a float product loses low bits past 2^53)
}

/** A sequence's row of the step: its parameters, and the position of the token it draws (its length so far). */
export function rowSpec(seq: Sequence): SampleRowSpec {
  const p = seq.params;
  return {
    temperature: p.greedy ? 0 : p.temperature, // the kernels' greedy is temperature 0
    topK: p.topK,
    topP: p.topP,
    minP: p.minP,
    repetitionPenalty: p.repetitionPenalty,
    presencePenalty: p.presencePenalty,
    frequencyPenalty: p.frequencyPenalty,
    seed: requestSeed(seq),
    position: seq.length,
    logprobs: p.logprobs ?? -1,
  };
}

/**
 * What the penalties need of one sequence's earlier tokens, kept up to date
 * incrementally: per distinct token, how often the output holds it and whether
 * the prompt does. The prompt is read once; each step folds in only the tokens
 * appended since the last one.
 */
export class PenaltyHistory {
  /** token -> [count in the output, 1 if in the prompt]. */
  readonly tokens = new Map<number, [number, number]>();
  private folded = 0;

  constructor(promptIds: readonly number[]) {
    for (const t of promptIds) this.tokens.set(t, [0, 1]);
  }

  /** Folds in the output tokens appended since the last call. */
  update(outputIds: readonly number[]): void {
    for (; this.folded < outputIds.length; this.folded++) {
      const t = outputIds[this.folded]!;
      const e = this.tokens.get(t);
      if (e) e[0]++;
      else this.tokens.set(t, [1, 0]);
    }
  }

  /**
   * Appends this sequence's entries (row, token, output count, in prompt) to `out` from
   * word `at`; returns the next free word. Tokens only in the prompt matter only to the
   * repetition penalty, so without one they are left out.
   */
  write(row: number, params: SamplingParams, out: Int32Array, at: number): number {
    const promptMatters = params.repetitionPenalty !== 1;
    for (const [token, [count, inPrompt]] of this.tokens) {
      if (count === 0 && !promptMatters) continue;
      out[at++] = row;
      out[at++] = token;
      out[at++] = count;
      out[at++] = inPrompt;
    }
    return at;
  }
}

/** The sampled ids, and the log-probs of the rows that asked, from sampleTokens' output (a copy back: it waits for the device). */
function readSampled(out: Tensor, sequences: readonly Sequence[]): SampleResult {
  const rows = sequences.length;
  const withLogprobs = sequences.some((s) => s.params.logprobs !== undefined);
  // The ids only (4 bytes a row), unless a row asked for log-probs.
  const view = withLogprobs ? out : out.narrow(0, 0, rows);
  const read = ops.readSampleOut(view.toArray() as Int32Array, rows);
  const tokens = Array.from(read.tokens);
  if (!withLogprobs) return { tokens };
  const logprobs = sequences.map((seq, i): SampledLogprobs | undefined => {
    const n = seq.params.logprobs;
    if (n === undefined) return undefined;
    // A row with fewer non-NaN logits than n marks the missing alternatives with id -1.
    const top = Array.from({ length: n }, (_, j) => ({
      token: read.topIds[i * ops.MAX_SAMPLE_LOGPROBS + j]!,
      logprob: read.topLogprobs[i * ops.MAX_SAMPLE_LOGPROBS + j]!,
    })).filter((t) => t.token >= 0);
    return { token: tokens[i]!, logprob: read.chosenLogprobs[i]!, top };
  });
  return { tokens, logprobs };
}

export class GpuSampler implements Sampler {
  private readonly histories = new Map<number, PenaltyHistory>();
  private scratch = new Int32Array(1024);

  /** Every parameter SamplingParams accepts is honoured here. */
  unsupported(_params: SamplingParams): string | undefined {
    return undefined;
  }

  /** `device` and `vocabSize` (the model's: the logits' width) are what stage() uploads for; sample() reads them off the logits. */
  constructor(
    private readonly device?: Device,
    private readonly vocabSize?: number,
  ) {}

  sample(logits: Tensor, sequences: readonly Sequence[]): SampleResult {
    const staged = this.staged(sequences, logits.device, logits.shape[1]!);
    staged.launch(logits);
    return staged.read();
  }

  /**
   * The step's sampling in parts: the rows' parameters and penalty entries uploaded now (the
   * engine stages before it queues the forward, while the device is idle: the upload waits for
   * nothing), the kernels queued by launch(), the ids (and the log-probs, when a row asked)
   * copied back by read(), which waits for the device.
   */
  stage(sequences: readonly Sequence[]): StagedSample {
    if (this.device === undefined || this.vocabSize === undefined) throw new Error('GpuSampler.stage: the sampler was made without a device and vocabulary size');
    return this.staged(sequences, this.device, this.vocabSize);
  }

  private staged(sequences: readonly Sequence[], device: Device, vocab: number): StagedSample {
    const params = ops.uploadSampleParams(sequences.map(rowSpec), this.penaltyEntries(sequences), vocab, device);
    let out: Tensor | undefined;
    let done = false;
    const free = () => {
      if (!done) {
        out?.dispose();
        params.dispose();
      }
      done = true;
    };
    return {
      launch: (logits: Tensor) => {
        if (done || out) throw new Error('GpuSampler: a staged sample is launched once, before it is read');
        try {
          out = ops.sampleTokensWith(logits, params);
        } catch (e) {
          free();
          throw e;
        }
      },
      read: (): SampleResult => {
        if (done || !out) throw new Error('GpuSampler: a staged sample is read once, after its launch');
        try {
          return readSampled(out, sequences);
        } finally {
          free();
        }
      },
      discard: free,
    };
  }

  /** The engine calls this when a sequence finishes or is aborted: its history goes. */
  release(seq: Sequence): void {
    this.histories.delete(seq.id);
  }

  /** The step's penalty entries: for each penalized row, one per distinct token of its prompt and output. */
  private penaltyEntries(sequences: readonly Sequence[]): Int32Array {
    let words = 0;
    const penalized: [number, Sequence, PenaltyHistory][] = [];
    sequences.forEach((seq, row) => {
      if (!seq.params.penalized) return;
      let h = this.histories.get(seq.id);
      if (!h) this.histories.set(seq.id, (h = new PenaltyHistory(seq.promptIds)));
      h.update(seq.outputIds);
      penalized.push([row, seq, h]);
      words += 4 * h.tokens.size;
    });
    if (words === 0) return new Int32Array(0);
    if (this.scratch.length < words) this.scratch = new Int32Array(Math.max(words, 2 * this.scratch.length));
    let at = 0;
    for (const [row, seq, h] of penalized) at = h.write(row, seq.params, this.scratch, at);
    return this.scratch.subarray(0, at);
  }
}
