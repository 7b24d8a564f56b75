// What a request asks of generation. Invalid values are errors that name the
// field, at construction, before any work is queued.

export interface SamplingParamsInit {
  /** 0 means greedy (argmax). */
  temperature?: number;
  /** Keep the k most likely tokens; 0 or undefined keeps all. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 keeps all. */
  topP?: number;
  maxTokens?: number;
  /** Generate maxTokens even past an end-of-sequence token (benchmarks). */
  ignoreEos?: boolean;
  /** Stop when the output text contains one of these (the stop string is not returned). */
  stop?: string[];
  /** Extra token ids that end generation, beside the model's EOS ids. */
  stopTokenIds?: number[];
  /** Seed for this request's sampling; same seed, same output. */
  seed?: number;
}

export class SamplingParams {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly maxTokens: number;
  readonly ignoreEos: boolean;
  readonly stop: readonly string[];
  readonly stopTokenIds: readonly number[];
  readonly seed: number | undefined;

  constructor(init: SamplingParamsInit = {}) {
    const fail = (m: string): never => {
      throw new RangeError(`SamplingParams: ${m}`);
    };
    this.temperature = init.temperature ?? 1.0;
    if (!Number.isFinite(this.temperature) || this.temperature < 0) fail(`temperature must be a finite number >= 0, got ${init.temperature}`);
    this.topK = init.topK ?? 0;
    if (!Number.isInteger(this.topK) || this.topK < 0) fail(`topK must be an integer >= 0 (0 = off), got ${init.topK}`);
    this.topP = init.topP ?? 1.0;
    if (!(this.topP > 0 && this.topP <= 1)) fail(`topP must be in (0, 1], got ${init.topP}`);
    this.maxTokens = init.maxTokens ?? 16;
    if (!Number.isInteger(this.maxTokens) || this.maxTokens < 1) fail(`maxTokens must be an integer >= 1, got ${init.maxTokens}`);
    this.ignoreEos = init.ignoreEos ?? false;
    if (typeof this.ignoreEos !== 'boolean') fail('ignoreEos must be a boolean');
    this.stop = [...(init.stop ?? [])];
    if (this.stop.some((s) => typeof s !== 'string' || s.length === 0)) fail('stop must be a list of non-empty strings');
    this.stopTokenIds = [...(init.stopTokenIds ?? [])];
    if (this.stopTokenIds.some((t) => !Number.isInteger(t) || t < 0)) fail('stopTokenIds must be non-negative integers');
    this.seed = init.seed;
    if (this.seed !== undefined && (!Number.isInteger(this.seed) || this.seed < 0)) fail(`seed must be a non-negative integer, got ${init.seed}`);
  }

  get greedy(): boolean {
    return this.temperature === 0;
  }
}
