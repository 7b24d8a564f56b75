// The parts an engine is made of, and what lessons swap. A recipe builds them;
// the LLM class (llm.ts) runs the loop: schedule -> run the model -> sample ->
// append and finish, until every request is done.
import type { Device } from '../backend.ts';
import type { DType } from '../dtype.ts';
import type { Qwen3Config } from '../model/config.ts';
import type { Tensor } from '../tensor.ts';
import type { Tokenizer } from '../tokenizer.ts';
import type { FinishReason, Sequence } from './sequence.ts';

/** What the scheduler hands the model runner for one step. */
export interface ScheduledBatch {
  sequences: Sequence[];
  /** Prefill runs the sequences' uncached prompt tokens; decode runs one new token each. */
  phase: 'prefill' | 'decode';
}

/** Decides which sequences run at each step (one at a time, static batches, continuous batching...). */
export interface Scheduler {
  add(seq: Sequence): void;
  /** The next step's work, or undefined when nothing can run. */
  schedule(): ScheduledBatch | undefined;
  /** Called after tokens were appended; releases finished sequences. */
  finished(seq: Sequence): void;
  readonly pending: number;
}

/** Runs the model for a batch and returns f32 logits [batch, vocab], one row per sequence (its last position). */
export interface ModelRunner {
  run(batch: ScheduledBatch): Tensor;
  /** Frees whatever the runner holds for a finished (or preempted) sequence. */
  release(seq: Sequence): void;
  dispose(): void;
}

/** Chooses the next token of each sequence from its logits row. */
export interface Sampler {
  sample(logits: Tensor, sequences: readonly Sequence[]): number[];
  /** Frees whatever the sampler keeps for a sequence that finished or stopped (its random stream, say). */
  release?(seq: Sequence): void;
}

/** Memory accounting of a KV cache: what it holds back versus what live tokens use. */
export interface KVCacheStats {
  reservedBytes: number;
  usedBytes: number;
}

export interface EngineContext {
  modelDir: string;
  cfg: Qwen3Config;
  device: Device;
  dtype: DType;
  tokenizer: Tokenizer;
}

export interface EngineParts {
  runner: ModelRunner;
  scheduler: Scheduler;
  sampler: Sampler;
  /** Present where the recipe has a KV cache to account for. */
  kvStats?: () => KVCacheStats;
  dispose(): void;
}

/** A lesson's engine: lesson N's recipe is lesson N-1's with one part replaced. */
export interface Recipe {
  name: string;
  lesson: number;
  /** One line: what this recipe changes. */
  summary: string;
  build(ctx: EngineContext): EngineParts;
}

export interface GenerationOutput {
  promptTokenIds: number[];
  tokenIds: number[];
  text: string;
  /** Undefined when the run stopped (time budget) before this request finished. */
  finishReason: FinishReason | undefined;
  /** Milliseconds from the start of generate() to this request's first token and to its end. */
  firstTokenMs: number;
  totalMs: number;
}

export interface GenerateStats {
  seconds: number;
  prefillTokens: number;
  prefillSeconds: number;
  decodeTokens: number;
  decodeSeconds: number;
  outputTokens: number;
  finishedRequests: number;
  /** True when a deadline stopped the run early. */
  partial: boolean;
  peakMemoryBytes: number;
  /** Peaks, and means over the run's steps (the mean shows what a design holds back on average). */
  kvCache?: KVCacheStats & { peakReservedBytes: number; peakUsedBytes: number; meanReservedBytes: number; meanUsedBytes: number };
}

export interface GenerateProgress {
  finishedRequests: number;
  totalRequests: number;
  outputTokens: number;
  elapsedSeconds: number;
}

export interface GenerateOptions {
  /** Called after every step (cheap: no device sync beyond what the step did). */
  onProgress?: (p: GenerateProgress) => void;
  /** performance.now() value after which no new step starts; unfinished requests are reported as such. */
  deadlineMs?: number;
  /** Decode output text (default true; benchmarks may skip it). */
  decodeText?: boolean;
}
