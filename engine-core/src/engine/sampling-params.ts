// What a request asks of generation. Invalid values are errors that name the
// field, at construction, before any work is queued.

export interface SamplingParamsInit {
  /** 0 means greedy (argmax). */
  temperature?: number;
  /** Keep the k most likely tokens; 0 or undefined keeps all. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 keeps all. */
  topP?: number;
  /** Drop tokens whose probability is below minP times the most likely token's; 0 keeps all. */
  minP?: number;
  /**
   * Divides a positive logit (multiplies a negative one) of every token already in
   * the prompt or the output (the CTRL paper's rule, as Hugging Face and vLLM apply
   * it); 1 is off.
   */
  repetitionPenalty?: number;
  /** Subtracted from the logit of every token the output already holds (OpenAI's presence_penalty); 0 is off. */
  presencePenalty?: number;
  /** Subtracted from a token's logit once per time the output holds it (OpenAI's frequency_penalty); 0 is off. */
  frequencyPenalty?: number;
  /**
   * Return the log-probability of each chosen token and of the `logprobs` most
   * likely alternatives (0 to 20, as OpenAI allows), under the model's
   * distribution before temperature, penalties and filters. Undefined: none.
   */
  logprobs?: number;
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

/**
 * Below this temperature a request is greedy: 1/T overflows float32 for T under about
 * 1e-38, and long before that every draw is the argmax anyway (vLLM uses the same bound).
 */
export const GREEDY_BELOW_TEMPERATURE = 1e-5;

/** A float32 the kernels can use: finite once rounded to 32 bits. */
function f32Finite(x: number): boolean {
  return Number.isFinite(Math.fround(x));
}

/** The most alternatives a request may ask log-probabilities for (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

export class SamplingParams {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly logprobs: number | undefined;
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
    if (!f32Finite(this.temperature) || this.temperature < 0) fail(`temperature must be a finite number >= 0, got ${init.temperature}`);
    this.topK = init.topK ?? 0;
    if (!Number.isInteger(this.topK) || this.topK < 0 || this.topK > 0x7fffffff) fail(`topK must be an integer in [0, 2^31 - 1] (0 = off), got ${init.topK}`);
    this.topP = init.topP ?? 1.0;
    if (!(this.topP > 0 && this.topP <= 1)) fail(`topP must be in (0, 1], got ${init.topP}`);
    this.minP = init.minP ?? 0;
    if (!(this.minP >= 0 && this.minP <= 1)) fail(`minP must be in [0, 1], got ${init.minP}`);
    this.repetitionPenalty = init.repetitionPenalty ?? 1;
    if (!(f32Finite(this.repetitionPenalty) && Math.fround(this.repetitionPenalty) > 0)) fail(`repetitionPenalty must be a finite number > 0 (1 = off), got ${init.repetitionPenalty}`);
    this.presencePenalty = init.presencePenalty ?? 0;
    if (!(this.presencePenalty >= -2 && this.presencePenalty <= 2)) fail(`presencePenalty must be in [-2, 2], got ${init.presencePenalty}`);
    this.frequencyPenalty = init.frequencyPenalty ?? 0;
    if (!(this.frequencyPenalty >= -2 && this.frequencyPenalty <= 2)) fail(`frequencyPenalty must be in [-2, 2], got ${init.frequencyPenalty}`);
    this.logprobs = init.logprobs;
    if (this.logprobs !== undefined && !(Number.isInteger(this.logprobs) && this.logprobs >= 0 && this.logprobs <= MAX_TOP_LOGPROBS))
      fail(`logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}] (alternatives per token), got ${init.logprobs}`);
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

  /** These parameters with some changed (checked again, as the constructor checks them). */
  with(changes: SamplingParamsInit): SamplingParams {
    const current: SamplingParamsInit = {
      temperature: this.temperature,
      topK: this.topK,
      topP: this.topP,
      minP: this.minP,
      repetitionPenalty: this.repetitionPenalty,
      presencePenalty: this.presencePenalty,
      frequencyPenalty: this.frequencyPenalty,
      maxTokens: this.maxTokens,
      ignoreEos: this.ignoreEos,
      stop: [...this.stop],
      stopTokenIds: [...this.stopTokenIds],
      ...(this.logprobs !== undefined ? { logprobs: this.logprobs } : {}),
      ...(this.seed !== undefined ? { seed: this.seed } : {}),
    };
    return new SamplingParams({ ...current, ...changes });
  }

  /** Temperature 0, or one too small to differ from it (GREEDY_BELOW_TEMPERATURE): the argmax. */
  get greedy(): boolean {
    return this.temperature < GREEDY_BELOW_TEMPERATURE;
  }

  /** Whether any of the three penalties is on (they need the sequence's earlier tokens). */
  get penalized(): boolean {
    return this.repetitionPenalty !== 1 || this.presencePenalty !== 0 || this.frequencyPenalty !== 0;
  }
}
