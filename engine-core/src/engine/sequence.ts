// One request's state as it moves through the engine:
//   waiting -> running -> finished   (a preempted sequence goes back to waiting)
import type { SamplingParams } from './sampling-params.ts';
import type { SampledLogprobs } from './types.ts';

export type SequenceStatus = 'waiting' | 'running' | 'finished';
/** 'abort': the caller (a client that went away, say) ended it. */
export type FinishReason = 'eos' | 'stop' | 'length' | 'abort';

let nextId = 0;

export class Sequence {
  readonly id = nextId++;
  status: SequenceStatus = 'waiting';
  finishReason: FinishReason | undefined;
  readonly outputIds: number[] = [];
  /** One entry per output token when the request asked for log-probs. */
  readonly logprobs: SampledLogprobs[] = [];
  /** Text decoded so far (the engine fills it when stop strings need checking or text is asked for). */
  text = '';
  /** How many of this sequence's tokens already have their K/V in the cache (0 again after a preemption). */
  cachedTokens = 0;
  /** Times the scheduler preempted it: its cache was dropped, to be recomputed. */
  preemptions = 0;
  readonly timings = { arrivalMs: performance.now(), firstTokenMs: NaN, finishedMs: NaN };

  constructor(
    readonly promptIds: readonly number[],
    readonly params: SamplingParams,
  ) {
    if (promptIds.length === 0) throw new RangeError('Sequence: the prompt is empty');
  }

  get length(): number {
    return this.promptIds.length + this.outputIds.length;
  }

  /** Every token id: prompt then output. */
  get allIds(): number[] {
    return [...this.promptIds, ...this.outputIds];
  }

  /** Token i, prompt then output, without building the joined list. */
  tokenAt(i: number): number {
    const p = this.promptIds.length;
    return i < p ? this.promptIds[i]! : this.outputIds[i - p]!;
  }

  get lastToken(): number {
    return this.outputIds.length ? this.outputIds[this.outputIds.length - 1]! : this.promptIds[this.promptIds.length - 1]!;
  }

  get finished(): boolean {
    return this.status === 'finished';
  }

  append(token: number, logprobs?: SampledLogprobs): void {
    if (this.outputIds.length === 0) this.timings.firstTokenMs = performance.now();
    this.outputIds.push(token);
    if (logprobs) this.logprobs.push(logprobs);
  }

  finish(reason: FinishReason): void {
    this.status = 'finished';
    this.finishReason = reason;
    this.timings.finishedMs = performance.now();
  }
}
