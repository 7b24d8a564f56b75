// The engine's front door, shaped like vLLM's and nano-vllm's Python API:
//
//   const llm = LLM.create({ recipe });
//   const outputs = llm.generate(['Hello'], new SamplingParams({ maxTokens: 32 }));
//
// The loop is the same in every lesson; the recipe decides the parts.
import { type Device, allocatorStats, defaultDevice, resetPeakStats } from '../backend.ts';
import type { DType } from '../dtype.ts';
import { type Qwen3Config, loadConfig } from '../model/config.ts';
import type { RandomModelInfo } from '../model/random.ts';
import { resolveModel } from '../model/resolve.ts';
import { type StreamDecoder, Tokenizer } from '../tokenizer.ts';
import { SamplingParams } from './sampling-params.ts';
import { Sequence } from './sequence.ts';
import type { EngineParts, GenerateOptions, GenerateStats, GenerationOutput, Recipe } from './types.ts';

export interface LLMOptions {
  recipe: Recipe;
  /** A Hugging Face Qwen3 folder; default: AIOS_MODEL, else the embedded random-weight model. */
  model?: string;
  device?: Device;
  dtype?: DType;
  log?: (s: string) => void;
}

export type Prompt = string | readonly number[];

export class LLM {
  private constructor(
    readonly recipe: Recipe,
    readonly modelDir: string,
    readonly cfg: Qwen3Config,
    readonly device: Device,
    readonly dtype: DType,
    readonly tokenizer: Tokenizer,
    /** The parts the recipe built (for inspection: a demo can ask its KV store what it did). */
    readonly parts: EngineParts,
    /** Present when the model folder holds seeded random weights (what resolveModel found). */
    readonly randomWeights: RandomModelInfo | undefined,
  ) {}

  static create(opts: LLMOptions): LLM {
    const device = opts.device ?? defaultDevice();
    const { dir, random } = resolveModel({ model: opts.model, device, log: opts.log });
    const cfg = loadConfig(dir);
    const dtype = opts.dtype ?? (device === 'cpu' ? 'f32' : cfg.dtype);
    const tokenizer = Tokenizer.fromDir(dir);
    const parts = opts.recipe.build({ modelDir: dir, cfg, device, dtype, tokenizer });
    return new LLM(opts.recipe, dir, cfg, device, dtype, tokenizer, parts, random);
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
    const maxLen = this.cfg.maxPositionEmbeddings;
    const seqs = prompts.map((prompt, i) => {
      const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
      ids.forEach((id) => {
        if (!Number.isInteger(id) || id < 0 || id >= this.cfg.vocabSize) throw new RangeError(`generate: prompt ${i} has token id ${id} outside [0, ${this.cfg.vocabSize})`);
      });
      if (ids.length + list[i]!.maxTokens > maxLen)
        throw new RangeError(`generate: prompt ${i} (${ids.length} tokens) + maxTokens ${list[i]!.maxTokens} exceeds the model's ${maxLen} positions`);
      return new Sequence(ids, list[i]!);
    });

    const { runner, scheduler, sampler } = this.parts;
    const eos = new Set(this.tokenizer.eosTokenIds);
    const decodeText = opts.decodeText ?? true;
    const stats: GenerateStats = {
      seconds: 0, prefillTokens: 0, prefillSeconds: 0, decodeTokens: 0, decodeSeconds: 0,
      outputTokens: 0, finishedRequests: 0, partial: false, peakMemoryBytes: 0,
    };
    resetPeakStats(this.device);
    const t0 = performance.now();
    let kvPeak: { peakReservedBytes: number; peakUsedBytes: number } | undefined;
    let kvSum = { reserved: 0, used: 0, steps: 0 };
    // Sequences with stop strings: their text so far, decoded one token at a time.
    const stops = new Map<Sequence, StreamDecoder>();
    for (const s of seqs) scheduler.add(s);

    while (scheduler.pending > 0) {
      if (opts.deadlineMs !== undefined && performance.now() >= opts.deadlineMs) {
        stats.partial = true;
        break;
      }
      const batch = scheduler.schedule();
      if (!batch) throw new Error(`generate: the ${this.recipe.name} scheduler has ${scheduler.pending} pending sequences but scheduled none`);
      const stepStart = performance.now();
      const logits = runner.run(batch);
      let tokens: number[];
      try {
        tokens = sampler.sample(logits, batch.sequences); // reads the logits back: the step is complete after this
      } finally {
        logits.dispose();
      }
      const stepSeconds = (performance.now() - stepStart) / 1000;
      if (batch.phase === 'prefill') {
        stats.prefillTokens += batch.sequences.reduce((n, s) => n + s.length - s.cachedTokens, 0);
        stats.prefillSeconds += stepSeconds;
      } else {
        stats.decodeTokens += batch.sequences.length;
        stats.decodeSeconds += stepSeconds;
      }
      if (this.parts.kvStats) {
        const kv = this.parts.kvStats();
        kvPeak = { peakReservedBytes: Math.max(kvPeak?.peakReservedBytes ?? 0, kv.reservedBytes), peakUsedBytes: Math.max(kvPeak?.peakUsedBytes ?? 0, kv.usedBytes) };
        kvSum = { reserved: kvSum.reserved + kv.reservedBytes, used: kvSum.used + kv.usedBytes, steps: kvSum.steps + 1 };
      }
      batch.sequences.forEach((seq, i) => {
        seq.cachedTokens = seq.length; // the runner has now seen every token of the sequence
        const token = tokens[i]!;
        seq.append(token);
        stats.outputTokens++;
        const p = seq.params;
        if (!p.ignoreEos && eos.has(token)) seq.finish('eos');
        else if (p.stopTokenIds.includes(token)) seq.finish('stop');
        else if (p.stop.length && this.stopStringHit(seq, token, stops)) seq.finish('stop');
        else if (seq.outputIds.length >= p.maxTokens) seq.finish('length');
        if (seq.finished) {
          runner.release(seq);
          sampler.release?.(seq);
          stops.delete(seq);
          scheduler.finished(seq);
          stats.finishedRequests++;
        }
      });
      opts.onProgress?.({ finishedRequests: stats.finishedRequests, totalRequests: seqs.length, outputTokens: stats.outputTokens, elapsedSeconds: (performance.now() - t0) / 1000 });
    }
    stats.seconds = (performance.now() - t0) / 1000;
    stats.peakMemoryBytes = allocatorStats(this.device).peakBytesInUse;
    if (this.parts.kvStats && kvPeak)
      stats.kvCache = { ...this.parts.kvStats(), ...kvPeak, meanReservedBytes: kvSum.reserved / kvSum.steps, meanUsedBytes: kvSum.used / kvSum.steps };

    for (const s of seqs) {
      if (s.finished) continue; // a deadline left these running
      runner.release(s);
      sampler.release?.(s);
    }
    const outputs = seqs.map((s): GenerationOutput => {
      let text = '';
      let tokenIds = s.outputIds;
      if (s.finishReason === 'stop' && s.params.stop.length) {
        // Cut the output at the stop string; the tokens are kept as generated.
        text = s.text;
      } else if (decodeText) text = this.tokenizer.decode(tokenIds, { skipSpecialTokens: true });
      tokenIds = [...tokenIds];
      return {
        promptTokenIds: [...s.promptIds],
        tokenIds,
        text,
        finishReason: s.finishReason,
        firstTokenMs: s.timings.firstTokenMs - t0,
        totalMs: (s.finished ? s.timings.finishedMs : performance.now()) - t0,
      };
    });
    return { outputs, stats };
  }

  /**
   * Appends the token's text to the sequence's and checks its stop strings;
   * keeps the text before the first hit. Only the new text and the end of the
   * old that a stop string could straddle are searched: O(1) per token.
   */
  private stopStringHit(seq: Sequence, token: number, stops: Map<Sequence, StreamDecoder>): boolean {
    let decoder = stops.get(seq);
    if (!decoder) stops.set(seq, (decoder = this.tokenizer.streamDecoder([], { skipSpecialTokens: true })));
    const before = seq.text.length;
    seq.text += decoder.push(token);
    const longest = Math.max(...seq.params.stop.map((s) => s.length));
    const from = Math.max(0, before - longest + 1);
    let cut = -1;
    for (const s of seq.params.stop) {
      const at = seq.text.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) seq.text = seq.text.slice(0, cut);
    return cut >= 0;
  }

  dispose(): void {
    this.parts.dispose();
  }
}
