// The engine's front door, shaped like vLLM's and nano-vllm's Python API:
//
//   const llm = LLM.create({ recipe });
//   const outputs = llm.generate(['Hello'], new SamplingParams({ maxTokens: 32 }));
//
// generate is a loop over the Engine's step() (engine.ts); the recipe decides the parts.
import { type Device, allocatorStats, defaultDevice, resetPeakStats } from '../backend.ts';
import type { DType } from '../dtype.ts';
import { type Qwen3Config, defaultDtype, loadConfig } from '../model/config.ts';
import type { RandomModelInfo } from '../model/random.ts';
import { resolveModel } from '../model/resolve.ts';
import { Tokenizer } from '../tokenizer.ts';
import { Engine, type Prompt } from './engine.ts';
import { SamplingParams } from './sampling-params.ts';
import type { Sequence } from './sequence.ts';
import { type EngineOptions, type EngineParts, type GenerateOptions, type GenerateStats, type GenerationOutput, type Recipe, engineOptions } from './types.ts';

export type { Prompt } from './engine.ts';

export interface LLMOptions {
  recipe: Recipe;
  /** A Hugging Face Qwen3 folder; default: AIOS_MODEL, else the embedded random-weight model. */
  model?: string;
  device?: Device;
  dtype?: DType;
  /** The model folder's tokenizer, where the caller has loaded it already (default: loaded from the folder). */
  tokenizer?: Tokenizer;
  /** The engine's limits (max sequences and tokens per step, memory share, block size); defaults: DEFAULT_ENGINE_OPTIONS. */
  engine?: Partial<EngineOptions>;
  log?: (s: string) => void;
}

export class LLM {
  /** The steppable engine over the recipe's parts (a server drives it directly). */
  readonly engine: Engine;

  private constructor(
    readonly recipe: Recipe,
    readonly modelDir: string,
    readonly cfg: Qwen3Config,
    readonly device: Device,
    readonly dtype: DType,
    readonly tokenizer: Tokenizer,
    readonly options: EngineOptions,
    /** The parts the recipe built (for inspection: a demo can ask its KV store what it did). */
    readonly parts: EngineParts,
    /** Present when the model folder holds seeded random weights (what resolveModel found). */
    readonly randomWeights: RandomModelInfo | undefined,
  ) {
    this.engine = new Engine(parts, tokenizer, cfg, device);
  }

  static create(opts: LLMOptions): LLM {
    const options = engineOptions(opts.engine);
    if (options.tensorParallelSize > 1 && !opts.recipe.tensorParallel)
      throw new RangeError(`lesson ${opts.recipe.lesson} (${opts.recipe.name}) runs on one device: tensor parallelism over ${options.tensorParallelSize} ranks starts with lesson 14`);
    const device = opts.device ?? defaultDevice();
    const { dir, random } = resolveModel({ model: opts.model, device, log: opts.log });
    const cfg = loadConfig(dir);
    const dtype = opts.dtype ?? defaultDtype(device, cfg);
    const tokenizer = opts.tokenizer ?? Tokenizer.fromDir(dir);
    const parts = opts.recipe.build({ modelDir: dir, cfg, device, dtype, options, log: opts.log ?? console.log });
    return new LLM(opts.recipe, dir, cfg, device, dtype, tokenizer, options, parts, random);
  }

  generate(prompts: readonly Prompt[], params: SamplingParams | readonly SamplingParams[] = new SamplingParams(), opts: GenerateOptions = {}): GenerationOutput[] {
    return this.generateWithStats(prompts, params, opts).outputs;
  }

  generateWithStats(
    prompts: readonly Prompt[],
    params: SamplingParams | readonly SamplingParams[] = new SamplingParams(),
    opts: GenerateOptions = {},
  ): { outputs: GenerationOutput[]; stats: GenerateStats } {
    const list = Array.isArray(params) ? (params as readonly SamplingParams[]) : prompts.map(() => params as SamplingParams);
    if (list.length !== prompts.length) throw new RangeError(`generate: ${prompts.length} prompts but ${list.length} SamplingParams`);
    list.forEach((p, i) => {
      if (!(p instanceof SamplingParams)) throw new TypeError(`generate: params[${i}] is not a SamplingParams`);
    });
    const engine = this.engine;
    if (engine.pending > 0) throw new Error(`generate: the engine still has ${engine.pending} requests of another caller`);
    const seqs: Sequence[] = [];
    try {
      prompts.forEach((prompt, i) => {
        try {
          seqs.push(engine.sequence(engine.addRequest(prompt, list[i]!))!);
        } catch (e) {
          if (e instanceof RangeError) throw new RangeError(`generate: prompt ${i}: ${e.message.replace(/^addRequest: /, '')}`);
          throw e;
        }
      });
    } catch (e) {
      for (const s of seqs) engine.abort(s.id); // nothing half-queued stays behind
      throw e;
    }

    engine.resetStats();
    resetPeakStats(this.device);
    const t0 = performance.now();
    let partial = false;
    while (engine.hasWork) {
      if (opts.deadlineMs !== undefined && performance.now() >= opts.deadlineMs) {
        partial = true;
        break;
      }
      engine.step();
      const s = engine.progress();
      opts.onProgress?.({ finishedRequests: s.finishedRequests, totalRequests: seqs.length, outputTokens: s.outputTokens, elapsedSeconds: (performance.now() - t0) / 1000 });
    }
    const stats = { ...engine.stats(), partial, seconds: (performance.now() - t0) / 1000, peakMemoryBytes: allocatorStats(this.device).peakBytesInUse };
    // A deadline leaves requests running: end them (their blocks go back) and report them unfinished.
    const unfinished = new Set(seqs.filter((s) => !s.finished));
    for (const seq of unfinished) engine.abort(seq.id); // finishes it as 'abort' at this time

    const decodeText = opts.decodeText ?? true;
    const outputs = seqs.map((s): GenerationOutput => {
      const cut = unfinished.has(s);
      // A stop-string finish has its text cut at the stop string; the tokens are kept as generated.
      const text = s.finishReason === 'stop' && s.params.stop.length ? s.text : decodeText ? this.tokenizer.decode(s.outputIds, { skipSpecialTokens: true, modelVocabSize: this.cfg.vocabSize }) : '';
      return {
        promptTokenIds: [...s.promptIds],
        tokenIds: [...s.outputIds],
        text,
        finishReason: cut ? undefined : s.finishReason,
        firstTokenMs: s.timings.firstTokenMs - t0,
        totalMs: s.timings.finishedMs - t0,
        preemptions: s.preemptions,
        ...(s.params.logprobs !== undefined ? { logprobs: [...s.logprobs] } : {}),
      };
    });
    return { outputs, stats };
  }

  dispose(): void {
    this.parts.dispose();
  }
}
