// The engine you can step: requests go in with addRequest, each step() runs
// one forward over whatever the scheduler chose and returns what it produced
// (new tokens, new text, finished requests), abort() ends a request and frees
// its memory at once. LLM.generate is a loop over step(); lesson 15's server
// drives the same API from an async loop and streams each delta as it comes.
//
//   const engine = new Engine(parts, tokenizer, cfg, device);
//   const id = engine.addRequest('Hello', new SamplingParams({ maxTokens: 32 }), { detokenize: true });
//   while (engine.hasWork) for (const d of engine.step().deltas) process.stdout.write(d.text);
import { type Device, synchronizeAsync } from '../backend.ts';
import type { Tensor } from '../tensor.ts';
import type { Qwen3Config } from '../model/config.ts';
import type { StreamDecoder, Tokenizer } from '../tokenizer.ts';
import { SamplingParams } from './sampling-params.ts';
import { type FinishReason, Sequence } from './sequence.ts';
import { type EngineParts, type GenerateStats, type PrefixCacheStats, type SampleResult, type StagedSample, type SampledLogprobs, type StepPhase, type StepPlan, samplesAt } from './types.ts';

export type Prompt = string | readonly number[];

export interface RequestOptions {
  /** Decode the output into text deltas as tokens arrive (default false: token ids only). */
  detokenize?: boolean;
}

/** What one request got from one step. */
export interface RequestDelta {
  id: number;
  /** The token sampled this step. */
  tokenIds: number[];
  /** Its log-probs, when the request asked (SamplingParams.logprobs). */
  logprobs?: SampledLogprobs[];
  /** New text (with detokenize or stop strings), held back while it could still be the start of a stop string. */
  text: string;
  finished: boolean;
  finishReason?: FinishReason;
}

export interface StepResult {
  deltas: RequestDelta[];
  /** Undefined when there was nothing to run. */
  phase: StepPhase | undefined;
  /** Tokens the forward ran (prompt chunks and decode tokens). */
  tokens: number;
  /** Requests the scheduler preempted to make room (they continue later, from a recompute). */
  preempted: number[];
  /** Deltas whose text waits for Engine.fillText (stepAsync with deferText), in order. */
  textToFill?: DeferredText[];
}

/** A delta whose text is decoded later (Engine.fillText): its request's state and the token it adds. */
export interface DeferredText {
  readonly delta: RequestDelta;
  readonly state: RequestState;
  readonly token: number;
  /** The token's index in the request's output: the decoder takes them in this order. */
  readonly index: number;
}

export interface StepOptions {
  /**
   * Leave the text of requests without stop strings for Engine.fillText (their finish never
   * depends on it): a server decodes it while the next step runs on the device instead of
   * between steps, when the device waits. Requests with stop strings are decoded in the step.
   */
  deferText?: boolean;
}

/** What the engine keeps per unfinished request (exported opaque: DeferredText holds one). */
export interface RequestState {
  seq: Sequence;
  /** Present when the request wants text or has stop strings to watch. */
  decoder?: StreamDecoder;
  detokenize: boolean;
  /** Characters of seq.text already handed out in deltas. */
  emitted: number;
  /** The longest stop string's length (0: none): how far back a new token's text can complete one. */
  longestStop: number;
  /** Output tokens whose text the decoder has taken, in order (a deferred token waits for fillText). */
  decodedTokens: number;
}

function emptyStats(): GenerateStats {
  return {
    seconds: 0, steps: 0, prefillTokens: 0, prefillSeconds: 0, decodeTokens: 0, decodeSeconds: 0, mixedTokens: 0, mixedSeconds: 0,
    enqueueSeconds: 0, syncSeconds: 0, outputTokens: 0, finishedRequests: 0, preemptions: 0, partial: false, peakMemoryBytes: 0,
  };
}

/** The prefix-cache counters accumulated since `base` was read. */
function prefixSince(now: PrefixCacheStats, base: PrefixCacheStats | undefined): PrefixCacheStats {
  const d = (k: keyof PrefixCacheStats): number => now[k] - (base?.[k] ?? 0);
  return { queries: d('queries'), queryTokens: d('queryTokens'), hits: d('hits'), hitBlocks: d('hitBlocks'), hitTokens: d('hitTokens'), revivedBlocks: d('revivedBlocks'), evictions: d('evictions') };
}

interface BegunStep {
  plan: StepPlan & { preempted?: Sequence[] };
  preempted: number[];
  logits: Tensor;
  /** The plan's sequences that sample this step (samplesAt), in plan order. */
  sampled: Sequence[];
  /** Their sampling, staged before the forward and queued behind it (Sampler.stage), when the sampler can. */
  staged: StagedSample | undefined;
  t0: number;
  t1: number;
}

/** What a step that had nothing to run returns. */
function emptyStep(): StepResult {
  return { deltas: [], phase: undefined, tokens: 0, preempted: [] };
}

export class Engine {
  private readonly live = new Map<number, RequestState>();
  /** True between a step's begin and its finish (stepAsync awaits the device in between). */
  private inFlight = false;
  /** Requests aborted while a step was in flight: ended when it finishes. */
  private readonly abortAfterStep = new Set<number>();
  private readonly eos: Set<number>;
  private counters = emptyStats();
  private kv = { peakReserved: 0, peakUsed: 0, sumReserved: 0, sumUsed: 0, steps: 0 };
  /** The scheduler's prefix-cache counters at the last resetStats (they count from its start). */
  private prefixBase: PrefixCacheStats | undefined;

  constructor(
    readonly parts: EngineParts,
    readonly tokenizer: Tokenizer,
    readonly cfg: Qwen3Config,
    readonly device: Device,
  ) {
    this.eos = new Set(tokenizer.eosTokenIds);
    this.prefixBase = parts.scheduler.stats?.().prefixCache;
  }

  /** Queues a request; returns its id. Bad prompts and lengths are RangeErrors that say what is wrong. */
  addRequest(prompt: Prompt, params: SamplingParams = new SamplingParams(), opts: RequestOptions = {}): number {
    if (!(params instanceof SamplingParams)) throw new TypeError('addRequest: params is not a SamplingParams');
    const refused = this.parts.sampler.unsupported?.(params);
    if (refused) throw new RangeError(`addRequest: ${refused}`);
    const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
    if (ids.length === 0) throw new RangeError('addRequest: the prompt is empty');
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= this.cfg.vocabSize) throw new RangeError(`addRequest: the prompt has token id ${id} outside [0, ${this.cfg.vocabSize})`);
    const maxLen = this.cfg.maxPositionEmbeddings;
    if (ids.length + params.maxTokens > maxLen)
      throw new RangeError(`addRequest: the prompt (${ids.length} tokens) + maxTokens ${params.maxTokens} exceeds the model's ${maxLen} positions`);
    const seq = new Sequence(ids, params);
    this.parts.scheduler.add(seq); // a paged scheduler refuses a request that could never fit its pool
    const detokenize = opts.detokenize ?? false;
    const state: RequestState = { seq, detokenize, emitted: 0, longestStop: Math.max(0, ...params.stop.map((s) => s.length)), decodedTokens: 0 };
    if (detokenize || params.stop.length) state.decoder = this.tokenizer.streamDecoder([], { skipSpecialTokens: true, modelVocabSize: this.cfg.vocabSize });
    this.live.set(seq.id, state);
    return seq.id;
  }

  /** The sequence of a request that has not finished yet (LLM keeps it to build its outputs). */
  sequence(id: number): Sequence | undefined {
    return this.live.get(id)?.seq;
  }

  get hasWork(): boolean {
    return this.parts.scheduler.pending > 0;
  }

  /** Requests added and not finished. */
  get pending(): number {
    return this.live.size;
  }

  /** Runs one step: schedule, forward, sample, append; returns what each request got. */
  step(opts: StepOptions = {}): StepResult {
    const begun = this.begin();
    return begun ? this.finish(begun, opts) : emptyStep();
  }

  /**
   * step(), with the wait for the device's forward spent off the event loop: the step's
   * kernels are queued when this returns its promise (an async function runs up to its
   * first await), and the JS thread is free until the device is done, so a server can
   * hand out the previous step's deltas, and take new requests, while the GPU works.
   * A request aborted meanwhile is ended once the step is over (its blocks are in the
   * step's plan); it gets no more deltas.
   */
  async stepAsync(opts: StepOptions = {}): Promise<StepResult> {
    const begun = this.begin();
    if (!begun) return emptyStep();
    try {
      await synchronizeAsync(this.device);
    } catch (e) {
      begun.staged?.discard();
      begun.logits.dispose();
      this.endStep(begun.plan.sequences);
      throw e;
    }
    return this.finish(begun, opts);
  }

  /**
   * Decodes the text of a step's deferred deltas (stepAsync with deferText), filling each
   * delta's text; call it once per step, in step order, before reading their text.
   */
  fillText(result: StepResult): void {
    const pending = result.textToFill;
    if (!pending) return;
    result.textToFill = undefined;
    for (const { delta, state, token, index } of pending) {
      if (index !== state.decodedTokens) throw new Error(`Engine.fillText: request ${state.seq.id}'s output token ${index} comes before token ${state.decodedTokens}'s text was filled (fill each step's text once, in step order)`);
      state.decodedTokens++;
      state.seq.text += state.decoder!.push(token);
      if (delta.finished) state.seq.text += state.decoder!.flush(); // no stop string: the whole text is kept
      delta.text = this.newText(state);
    }
  }

  /** Schedules the step and queues its forward; undefined when nothing is scheduled. */
  private begin(): BegunStep | undefined {
    const { scheduler, runner } = this.parts;
    if (this.inFlight) throw new Error('Engine: a step is already in flight (await stepAsync() before the next step)');
    const plan = scheduler.schedule();
    if (!plan) {
      if (scheduler.pending > 0) throw new Error(`Engine.step: the scheduler has ${scheduler.pending} pending sequences but scheduled none`);
      return undefined;
    }
    const preempted: number[] = [];
    for (const s of plan.preempted ?? []) {
      runner.release(s);
      s.preemptions++;
      this.counters.preemptions++;
      preempted.push(s.id);
    }
    const t0 = performance.now();
    const sampled = plan.sequences.filter((_, i) => samplesAt(plan, i));
    // The sampling's parameters go up while the device is idle; its kernels go right behind the forward.
    const staged = sampled.length && this.parts.sampler.stage ? this.parts.sampler.stage(sampled) : undefined;
    let logits: Tensor;
    try {
      logits = runner.run(plan); // returns with the forward queued on the device
    } catch (e) {
      staged?.discard();
      throw e;
    }
    this.inFlight = true;
    try {
      staged?.launch(logits);
      scheduler.overlap?.(); // host work that hides behind the queued forward (stepAsync: before its wait)
    } catch (e) {
      staged?.discard();
      logits.dispose();
      this.inFlight = false;
      throw e;
    }
    return { plan, preempted, logits, sampled, staged, t0, t1: performance.now() };
  }

  /** Samples (reading the ids back completes the step), appends, finishes; then the aborts that waited for the step. */
  private finish(begun: BegunStep, opts: StepOptions): StepResult {
    let result: StepResult | undefined;
    try {
      result = this.sampleAndAppend(begun, opts.deferText ?? false);
      return result;
    } finally {
      this.endStep(result ? [] : begun.plan.sequences);
    }
  }

  /**
   * The step is over: the requests aborted while it was in flight end now, and so do `failed`,
   * the sequences of a step that failed (the device under it, or reading its tokens): their
   * slots were appended but their tokens never came, so none of them can go on.
   */
  private endStep(failed: readonly Sequence[]): void {
    this.inFlight = false;
    for (const s of failed) this.abortAfterStep.add(s.id);
    const ended = [...this.abortAfterStep];
    this.abortAfterStep.clear();
    for (const id of ended) this.abort(id);
  }

  private sampleAndAppend({ plan, preempted, logits, sampled, staged, t0, t1 }: BegunStep, deferText: boolean): StepResult {
    const { scheduler, sampler } = this.parts;
    let result: SampleResult;
    try {
      // Reading the ids back completes the step.
      result = staged ? staged.read() : sampled.length ? sampler.sample(logits, sampled) : { tokens: [] };
    } finally {
      logits.dispose();
    }
    const textToFill: DeferredText[] = [];
    const t2 = performance.now();
    const tokensRun = plan.newTokens.reduce((a, b) => a + b, 0);
    this.account(plan.phase, tokensRun, (t2 - t0) / 1000, (t1 - t0) / 1000, (t2 - t1) / 1000);
    plan.sequences.forEach((s, i) => (s.cachedTokens += plan.newTokens[i]!));

    const deltas: RequestDelta[] = [];
    sampled.forEach((seq, i) => {
      if (this.abortAfterStep.has(seq.id)) return; // its client is gone: no token, no delta; finish() ends it
      const token = result.tokens[i]!;
      const logprobs = seq.params.logprobs !== undefined ? result.logprobs?.[i] : undefined;
      if (seq.params.logprobs !== undefined && !logprobs) throw new Error(`Engine.step: the sampler returned no log-probs for request ${seq.id}, which asked for them`);
      seq.append(token, logprobs);
      this.counters.outputTokens++;
      const state = this.live.get(seq.id)!;
      const p = seq.params;
      const before = seq.text.length;
      const later = deferText && state.detokenize && !p.stop.length; // its text waits for fillText (detokenize made its decoder)
      const index = seq.outputIds.length - 1;
      if (state.decoder && !later) {
        // A step decoded now after steps left for fillText would put this token's text before theirs.
        if (index !== state.decodedTokens) throw new Error(`Engine: request ${seq.id} has text of ${index - state.decodedTokens} earlier token(s) waiting for fillText`);
        state.decodedTokens++;
        seq.text += state.decoder.push(token);
      }
      if (!p.ignoreEos && this.eos.has(token)) seq.finish('eos');
      else if (p.stopTokenIds.includes(token)) seq.finish('stop');
      else if (p.stop.length && this.cutAtStopString(state, before)) seq.finish('stop');
      else if (seq.outputIds.length >= p.maxTokens) seq.finish('length');
      // A finish that keeps the whole text: what the decoder held back (a character's first bytes) is
      // its text now, so the deltas add up to decode(tokens), as the offline output's text is.
      if (!later && seq.finished && state.decoder && !(seq.finishReason === 'stop' && p.stop.length && !p.stopTokenIds.includes(token))) seq.text += state.decoder.flush();
      const delta: RequestDelta = {
        id: seq.id,
        tokenIds: [token],
        ...(logprobs ? { logprobs: [logprobs] } : {}),
        text: later ? '' : this.newText(state),
        finished: seq.finished,
        ...(seq.finished ? { finishReason: seq.finishReason } : {}),
      };
      deltas.push(delta);
      if (later) textToFill.push({ delta, state, token, index });
      if (seq.finished) {
        this.retire(state);
        scheduler.finished(seq);
        this.counters.finishedRequests++;
      }
    });
    return { deltas, phase: plan.phase, tokens: tokensRun, preempted, ...(textToFill.length ? { textToFill } : {}) };
  }

  /** Ends a request now, wherever it is, and frees its blocks; false if it is unknown or already finished. */
  abort(id: number): boolean {
    const state = this.live.get(id);
    if (!state) return false;
    if (this.inFlight) {
      // The step in flight holds its blocks and will write its K/V: end it when the step is over.
      this.abortAfterStep.add(id);
      return true;
    }
    this.parts.scheduler.abort(state.seq);
    this.retire(state);
    state.seq.finish('abort');
    return true;
  }

  /** Counters since the last resetStats(); kvCache when the parts account for one. */
  stats(): GenerateStats {
    const s = { ...this.counters };
    const prefix = this.parts.scheduler.stats?.().prefixCache;
    if (prefix) s.prefixCache = prefixSince(prefix, this.prefixBase);
    if (this.parts.kvStats && this.kv.steps > 0)
      s.kvCache = {
        ...this.parts.kvStats(), // the memory held now
        peakReservedBytes: this.kv.peakReserved,
        peakUsedBytes: this.kv.peakUsed,
        meanReservedBytes: this.kv.sumReserved / this.kv.steps,
        meanUsedBytes: this.kv.sumUsed / this.kv.steps,
      };
    return s;
  }

  /** What a progress line needs, without stats()'s copy and KV query: for every step. */
  progress(): { finishedRequests: number; outputTokens: number } {
    return { finishedRequests: this.counters.finishedRequests, outputTokens: this.counters.outputTokens };
  }

  resetStats(): void {
    this.counters = emptyStats();
    this.kv = { peakReserved: 0, peakUsed: 0, sumReserved: 0, sumUsed: 0, steps: 0 };
    this.prefixBase = this.parts.scheduler.stats?.().prefixCache;
  }

  private account(phase: StepPhase, tokens: number, seconds: number, enqueue: number, sync: number): void {
    const c = this.counters;
    c.steps++;
    c.enqueueSeconds += enqueue;
    c.syncSeconds += sync;
    if (phase === 'prefill') {
      c.prefillTokens += tokens;
      c.prefillSeconds += seconds;
    } else if (phase === 'decode') {
      c.decodeTokens += tokens;
      c.decodeSeconds += seconds;
    } else {
      c.mixedTokens += tokens;
      c.mixedSeconds += seconds;
    }
    if (this.parts.kvStats) {
      const kv = this.parts.kvStats();
      this.kv.peakReserved = Math.max(this.kv.peakReserved, kv.reservedBytes);
      this.kv.peakUsed = Math.max(this.kv.peakUsed, kv.usedBytes);
      this.kv.sumReserved += kv.reservedBytes;
      this.kv.sumUsed += kv.usedBytes;
      this.kv.steps++;
    }
  }

  /** Frees what the runner and sampler keep for a request and forgets it. */
  private retire(state: RequestState): void {
    this.parts.runner.release(state.seq);
    this.parts.sampler.release?.(state.seq);
    this.live.delete(state.seq.id);
  }

  /**
   * Checks the request's stop strings against its text; keeps the text before
   * the first hit. Only the new text and the end of the old that a stop string
   * could straddle are searched: O(1) per token.
   */
  private cutAtStopString(state: RequestState, before: number): boolean {
    const seq = state.seq;
    const from = Math.max(0, before - state.longestStop + 1);
    let cut = -1;
    for (const s of seq.params.stop) {
      const at = seq.text.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) seq.text = seq.text.slice(0, cut);
    return cut >= 0;
  }

  /** Text not yet handed out; while running, the last characters that could begin a stop string wait. */
  private newText(state: RequestState): string {
    if (!state.detokenize) return '';
    const seq = state.seq;
    const hold = seq.finished || !state.longestStop ? 0 : state.longestStop - 1;
    const end = Math.max(state.emitted, seq.text.length - hold);
    const text = seq.text.slice(state.emitted, end);
    state.emitted = end;
    return text;
  }
}
