// The parts an engine is made of, and what lessons swap. A recipe builds them;
// the Engine (engine.ts) runs the loop one step at a time: schedule -> run the
// model -> sample -> append and finish. LLM.generate (llm.ts) loops over it.
import type { Device } from '../backend.ts';
import type { DType } from '../dtype.ts';
import type { Qwen3Config } from '../model/config.ts';
import type { Shard } from '../model/shard.ts';
import type { Tensor } from '../tensor.ts';
import type { SamplingParams } from './sampling-params.ts';
import type { FinishReason, Sequence } from './sequence.ts';

/**
 * What the scheduler hands the model runner for one step: which sequences run,
 * how many new tokens of each (their uncached tokens, or a chunk of them), and,
 * for a paged engine, each one's block table. A sequence whose new tokens reach
 * its last token gets a logits row and a sampled token; a chunk short of it only
 * fills the cache.
 */
export interface StepPlan {
  sequences: Sequence[];
  /** New tokens per sequence, in the order of `sequences`: tokens [cachedTokens, cachedTokens + n). */
  newTokens: number[];
  /** 'prefill' when every sequence runs prompt tokens, 'decode' when each runs one new token, 'mixed' otherwise. */
  phase: StepPhase;
  /** Block ids of each sequence (its page table), where the scheduler manages paged memory. */
  blockTables?: readonly (readonly number[])[];
}

export type StepPhase = 'prefill' | 'decode' | 'mixed';

/** Whether sequence i of the plan reaches its last token this step (and so gets a logits row). */
export function samplesAt(plan: StepPlan, i: number): boolean {
  const seq = plan.sequences[i]!;
  return seq.cachedTokens + plan.newTokens[i]! === seq.length;
}

/** Decides which sequences run at each step (one at a time, static batches, continuous batching...). */
export interface Scheduler {
  add(seq: Sequence): void;
  /**
   * The next step's work, or undefined when nothing can run. Sequences it
   * preempted to make room are back in its waiting queue and listed in
   * `preempted` (their cache is gone: the runner is told to forget them).
   */
  schedule(): (StepPlan & { preempted?: Sequence[] }) | undefined;
  /** Called once a finished sequence's last token is appended: frees what it holds. */
  finished(seq: Sequence): void;
  /** Removes a sequence wherever it is (waiting or running) and frees what it holds. */
  abort(seq: Sequence): void;
  /** Sequences added and not yet finished or aborted. */
  readonly pending: number;
  /** Queue and memory figures for progress lines and metrics. */
  stats?(): SchedulerStats;
  /**
   * Forgets what it keeps cached between requests (lesson 13's prefix blocks), so that
   * a timed run starts cold and its repeats measure the same thing. Call it with nothing pending.
   */
  dropCache?(): void;
  /**
   * Work that may run while the device computes the step just scheduled: the
   * engine calls it after the runner has queued the step's forward and before
   * the sampler waits for it, so on a GPU its host time hides behind the
   * forward's. It must not change what the next schedule() decides (lesson 13
   * hashes the blocks this step fills, which only fills a cache).
   */
  overlap?(): void;
}

export interface SchedulerStats {
  waiting: number;
  running: number;
  /** Paged schedulers: KV blocks in use and in all. */
  usedBlocks?: number;
  totalBlocks?: number;
  /** Schedulers that reuse cached prefixes (lesson 13 on): counters since the scheduler was made. */
  prefixCache?: PrefixCacheStats;
}

/** What a prefix cache saved: lookups at admission and what they found. */
export interface PrefixCacheStats {
  /** Admissions (new requests, and preempted ones coming back) that looked their prefix up. */
  queries: number;
  /** Those sequences' tokens, all told. */
  queryTokens: number;
  /** Admissions that found at least one cached block. */
  hits: number;
  /** Cached blocks reused, and their tokens: prefill the engine did not run. */
  hitBlocks: number;
  hitTokens: number;
  /** Of the reused blocks, those no sequence held (they were waiting to be evicted). */
  revivedBlocks: number;
  /** Cached blocks evicted (least recently used) because the pool needed a free one. */
  evictions: number;
}

/** Runs the model for a step and returns f32 logits [n, vocab]: one row per sequence that samples (samplesAt), in plan order. */
export interface ModelRunner {
  run(plan: StepPlan): Tensor;
  /** Frees whatever the runner holds for a finished, aborted or preempted sequence. */
  release(seq: Sequence): void;
  dispose(): void;
}

/** A token and its log-probability. */
export interface TokenLogprob {
  token: number;
  logprob: number;
}

/** The chosen token's log-probability and the most likely alternatives' (most likely first). */
export interface SampledLogprobs extends TokenLogprob {
  top: TokenLogprob[];
}

/** What a sampler returns for a step: one token per row, and log-probs for the rows whose request asked. */
export interface SampleResult {
  tokens: number[];
  /** Row i's entry is present when sequences[i].params.logprobs is defined. */
  logprobs?: (SampledLogprobs | undefined)[];
}

/**
 * A step's sampling in three parts (Sampler.stage): its parameters go to the device before the
 * forward is queued (an upload waits for the device's queue, and behind the forward it would
 * wait for the forward), its kernels are queued right behind the forward, its tokens are read
 * once the step is done.
 */
export interface StagedSample {
  /** Queues the sampling kernels on these logits (once). */
  launch(logits: Tensor): void;
  /** The tokens (reading them back waits for the device). */
  read(): SampleResult;
  /** Frees what the sampling holds without reading it (the step failed). */
  discard(): void;
}

/** Chooses the next token of each sequence from its logits row. */
export interface Sampler {
  sample(logits: Tensor, sequences: readonly Sequence[]): SampleResult;
  /**
   * sample() in parts (StagedSample): the engine stages it before queueing the forward and
   * launches it right behind, so the wait for the device (Engine.stepAsync) covers the
   * sampling too and the device runs the step without a gap. A sampler without it samples
   * when the step is read.
   */
  stage?(sequences: readonly Sequence[]): StagedSample;
  /**
   * Why this sampler cannot honour a request's parameters (an earlier lesson's
   * sampler has no penalties, say), or undefined when it can: the engine refuses
   * such a request at addRequest rather than ignore what it asked for.
   */
  unsupported?(params: SamplingParams): string | undefined;
  /** Frees whatever the sampler keeps for a sequence that finished or stopped (its random stream, say). */
  release?(seq: Sequence): void;
}

/** Memory accounting of a KV cache: what it holds back versus what live tokens use. */
export interface KVCacheStats {
  reservedBytes: number;
  usedBytes: number;
}

/**
 * The engine's limits, as vLLM and nano-vllm name them. Lessons 03-06 run one
 * request at a time and use only what they need (lesson 06: the memory share, the
 * block size and kvCacheBytes); the batched runtime (lesson 07 on) uses all of them.
 */
export interface EngineOptions {
  /** Most sequences in one step (vLLM's max_num_seqs). */
  maxNumSeqs: number;
  /** Most tokens in one step (vLLM's max_num_batched_tokens): bounds a prefill step's activations. */
  maxNumBatchedTokens: number;
  /** Share of the GPU's memory the engine may use in all: weights, activations and the KV pool. */
  gpuMemoryUtilization: number;
  /** Tokens per KV block. */
  blockSize: number;
  /** KV pool bytes, instead of sizing it from free memory (the CPU default is 256 MiB; AIOS_KV_CACHE_BYTES overrides). */
  kvCacheBytes?: number;
  /**
   * Ranks the model is split over (vLLM's tensor_parallel_size): GPUs cuda:0..N-1 on a GPU,
   * threads on the CPU. Only a recipe that says `tensorParallel` (lesson 14 on) takes more than 1.
   */
  tensorParallelSize: number;
}

export const DEFAULT_ENGINE_OPTIONS: Readonly<EngineOptions> = { maxNumSeqs: 256, maxNumBatchedTokens: 16384, gpuMemoryUtilization: 0.9, blockSize: 16, tensorParallelSize: 1 };

/** Fills in defaults and names the option that is out of range. */
export function engineOptions(partial: Partial<EngineOptions> = {}): EngineOptions {
  const o = { ...DEFAULT_ENGINE_OPTIONS, ...Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) } as EngineOptions;
  const positiveInt = (name: keyof EngineOptions, v: unknown) => {
    if (!Number.isInteger(v) || (v as number) < 1) throw new RangeError(`engine options: ${name} must be a positive integer, got ${v}`);
  };
  positiveInt('maxNumSeqs', o.maxNumSeqs);
  positiveInt('maxNumBatchedTokens', o.maxNumBatchedTokens);
  positiveInt('blockSize', o.blockSize);
  positiveInt('tensorParallelSize', o.tensorParallelSize);
  if (o.maxNumBatchedTokens < o.maxNumSeqs)
    throw new RangeError(`engine options: maxNumBatchedTokens (${o.maxNumBatchedTokens}) must be at least maxNumSeqs (${o.maxNumSeqs}): a decode step runs one token per sequence`);
  if (!(o.gpuMemoryUtilization > 0 && o.gpuMemoryUtilization <= 1))
    throw new RangeError(`engine options: gpuMemoryUtilization must be in (0, 1], got ${o.gpuMemoryUtilization}`);
  if (o.kvCacheBytes !== undefined && !(o.kvCacheBytes > 0)) throw new RangeError(`engine options: kvCacheBytes must be a positive number of bytes, got ${o.kvCacheBytes}`);
  return o;
}

export interface EngineContext {
  modelDir: string;
  cfg: Qwen3Config;
  device: Device;
  dtype: DType;
  options: EngineOptions;
  /** Progress of long set-up work (sizing the pool, capturing graphs); LLMOptions.log, else console.log. */
  log: (s: string) => void;
  /**
   * Lesson 14: this engine's part of a tensor-parallel group. Where present, `cfg` is the
   * rank's local shape (shard.ts localConfig) and the model combines its partial results
   * through `shard.comm`.
   */
  shard?: Shard;
}

export interface EngineParts {
  runner: ModelRunner;
  scheduler: Scheduler;
  sampler: Sampler;
  /** Present where the recipe has a KV cache to account for. */
  kvStats?: () => KVCacheStats;
  /** Lines that describe how the parts were set up (the KV pool's size and why), for demos and logs. */
  describe?: () => string[];
  dispose(): void;
}

/**
 * How a recipe's engine serves requests: one at a time (lessons 03-06) or many
 * per forward (07 on). The harness reads it (the roofline of the run, whether a
 * sharded run may be summed), so engine-core never asks which lesson it runs.
 */
export type EngineShape = 'sequential' | 'batched';

/** A lesson's engine: lesson N's recipe is lesson N-1's with one part replaced. */
export interface Recipe {
  name: string;
  lesson: number;
  /** One line: what this recipe changes. */
  summary: string;
  shape: EngineShape;
  /** True where the recipe can split the model over options.tensorParallelSize ranks (lesson 14 on). */
  tensorParallel?: boolean;
  /** Why a run of this recipe must not be recorded now (a timing experiment set in the environment), if so. */
  unrecordable?(): string | undefined;
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
  /** Times this request was preempted (its cache dropped and recomputed). */
  preemptions: number;
  /** One entry per output token, when the request asked for log-probs (SamplingParams.logprobs). */
  logprobs?: SampledLogprobs[];
}

export interface GenerateStats {
  seconds: number;
  steps: number;
  prefillTokens: number;
  prefillSeconds: number;
  decodeTokens: number;
  decodeSeconds: number;
  /** Steps that ran prefill and decode tokens together (schedulers that mix them). */
  mixedTokens: number;
  mixedSeconds: number;
  /**
   * Host seconds spent queueing the steps' work (the runner's forward returns
   * with its kernels queued, not done) and then waiting for the device at the
   * sampled tokens' read-back: where the step time goes.
   */
  enqueueSeconds: number;
  syncSeconds: number;
  outputTokens: number;
  finishedRequests: number;
  preemptions: number;
  /** True when a deadline stopped the run early. */
  partial: boolean;
  peakMemoryBytes: number;
  /** Where the scheduler caches prefixes (lesson 13 on): what the run's admissions found. */
  prefixCache?: PrefixCacheStats;
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
