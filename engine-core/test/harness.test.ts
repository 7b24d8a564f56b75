// The harness on the CPU with a fake recipe (the tiny random Qwen3 folder for
// the config and tokenizer; a runner that ignores the weights and returns fixed
// logits), records in a temp AIOS_RESULTS_DIR, and the roofline arithmetic on a
// hand-computed example.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it, vi } from 'vitest';
import { scratchDir } from './scratch.ts';

// Before records.ts is imported: its RESULTS_DIR is read once.
const RESULTS = await vi.hoisted(async () => {
  const fs = await import('node:fs');
  const osm = await import('node:os');
  const p = await import('node:path');
  const dir = fs.mkdtempSync(p.join(osm.tmpdir(), 'aios-harness-results-'));
  process.env.AIOS_RESULTS_DIR = dir;
  return dir;
});
afterAll(() => rmSync(RESULTS, { recursive: true, force: true }));

import { Tensor } from '../src/index.ts';
import {
  type BenchRunResult,
  benchRecordFor,
  cardRates,
  compareWithPrevious,
  estimateRun,
  findLatestRecord,
  measureWorkload,
  modelInfo,
  rooflineFor,
  runWorkload,
  summarizeRun,
  quantile,
  firstTokenSummary,
  describePrefixCache,
  toBenchRecord,
  warmUp,
  engineEnvironment,
} from '../src/bench/harness.ts';
import { type AnyRecord, type BenchRecord, REPO_ROOT, RESULTS_DIR, limitsTag, recordEngineShape, resultsDir, writeRecord } from '../src/bench/records.ts';
import { batchedRoofline, kvBytesPerToken, modelCosts, ratesFromEnvironment, sequentialRoofline, workloadRoofline } from '../src/bench/roofline.ts';
import { mergeShardRecords } from '../src/bench/shards.ts';
import { type Workload, courseWorkload, firstRequests, shardOf } from '../src/bench/workloads.ts';
import { recordProblem } from '../src/chart/data.ts';
import { LLM } from '../src/engine/llm.ts';
import { SamplingParams } from '../src/engine/sampling-params.ts';
import type { Sequence } from '../src/engine/sequence.ts';
import type { EngineParts, GenerateProgress, KVCacheStats, ModelRunner, Recipe, SampleResult, Sampler, StepPlan } from '../src/engine/types.ts';
import { samplesAt } from '../src/engine/types.ts';
import { type Qwen3Config, PRESETS, paramCount } from '../src/model/config.ts';
import { ensureDefaultModel } from '../src/model/resolve.ts';
// Lesson 03's scheduler, one request at a time: engine-core's harness is tested on the engine the lessons run.
import { SerialScheduler } from '../../lessons/03-baseline-engine/src/serial-scheduler.ts';

const MODEL = ensureDefaultModel('cpu', () => {});
const quiet = (): void => {};

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Ignores the model: each row is zeros with a 1 at (sequence length mod 50); optionally sleeps per call. */
class FakeRunner implements ModelRunner {
  calls = 0;
  constructor(
    private readonly vocab: number,
    private readonly sleep: (call: number) => number = () => 0,
  ) {}
  run(plan: StepPlan): Tensor {
    const ms = this.sleep(this.calls++);
    if (ms > 0) sleepMs(ms);
    const sampled = plan.sequences.filter((_, i) => samplesAt(plan, i));
    const rows = new Float32Array(sampled.length * this.vocab);
    sampled.forEach((s, i) => {
      rows[i * this.vocab + (s.length % 50)] = 1;
    });
    return Tensor.fromArray(rows, [sampled.length, this.vocab], { device: 'cpu' });
  }
  release(): void {}
  dispose(): void {}
}

/** Greedy, with log-probs from a host log-softmax; it refuses min-p, to test how the engine treats a refusal. */
class Greedy implements Sampler {
  unsupported(params: SamplingParams): string | undefined {
    return params.minP > 0 ? 'the test sampler has no minP' : undefined;
  }

  sample(logits: Tensor, sequences: readonly Sequence[]): SampleResult {
    const V = logits.shape[1]!;
    const all = logits.toArray() as Float32Array;
    const result: SampleResult = { tokens: [], logprobs: [] };
    sequences.forEach((seq, i) => {
      const row = all.subarray(i * V, (i + 1) * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
      result.tokens.push(best);
      const n = seq.params.logprobs;
      if (n === undefined) return void result.logprobs!.push(undefined);
      let sum = 0;
      for (const x of row) sum += Math.exp(x - row[best]!);
      const lp = (t: number) => ({ token: t, logprob: row[t]! - row[best]! - Math.log(sum) });
      const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
      result.logprobs!.push({ ...lp(best), top: order.slice(0, n).map(lp) });
    });
    return result;
  }
}

interface Fake {
  recipe: Recipe;
  runner: () => FakeRunner;
}

function fakeRecipe(opts: { lesson?: number; sleep?: (call: number) => number; kv?: boolean; shape?: Recipe['shape'] } = {}): Fake {
  let runner: FakeRunner | undefined;
  const recipe: Recipe = {
    name: 'fake-serial',
    lesson: opts.lesson ?? 3,
    shape: opts.shape ?? 'sequential',
    summary: 'a test recipe: one sequence at a time, fixed logits',
    build(ctx): EngineParts {
      runner = new FakeRunner(ctx.cfg.vocabSize, opts.sleep);
      const r = runner;
      const kvStats = opts.kv ? (): KVCacheStats => ({ reservedBytes: 4096, usedBytes: 64 * r.calls }) : undefined;
      return { runner: r, scheduler: new SerialScheduler(), sampler: new Greedy(), ...(kvStats ? { kvStats } : {}), dispose: () => r.dispose() };
    },
  };
  return {
    recipe,
    runner: () => {
      if (!runner) throw new Error('not built yet');
      return runner;
    },
  };
}

function makeLLM(fake: Fake): LLM {
  return LLM.create({ recipe: fake.recipe, model: MODEL, device: 'cpu', log: quiet });
}

/** Three short greedy requests: 6 + 8 + 10 prompt tokens, 6 output tokens each (18 steps one at a time). */
function tinyWorkload(): Workload {
  const requests = [6, 8, 10].map((n, i) => ({
    promptIds: Array.from({ length: n }, (_, t) => 100 + 7 * t + i),
    params: new SamplingParams({ temperature: 0, ignoreEos: true, maxTokens: 6 }),
  }));
  return { name: 'tiny', base: 'course', description: 'three short requests (test)', requests, totals: { requests: 3, promptTokens: 24, outputTokens: 18 } };
}

describe('LLM stop strings', () => {
  // The fake runner makes token (length mod 50) each step: ids 0-49 are single ASCII
  // characters in Qwen3's vocabulary, so the text is a known run of characters.
  it('stops at the first stop string, also one split across tokens, and cuts the text before it', () => {
    const llm = makeLLM(fakeRecipe());
    const prompt = [100, 101, 102, 103, 104, 105];
    const full = llm.generate([prompt], new SamplingParams({ temperature: 0, maxTokens: 30, ignoreEos: true }))[0]!;
    for (const stop of ['/0', '3']) {
      const at = full.text.indexOf(stop);
      expect(at).toBeGreaterThan(0);
      const out = llm.generate([prompt], new SamplingParams({ temperature: 0, maxTokens: 30, ignoreEos: true, stop: [stop, 'never'] }))[0]!;
      expect(out.finishReason).toBe('stop');
      expect(out.text).toBe(full.text.slice(0, at));
      // Generation ends with the token that completes the stop string.
      expect(llm.tokenizer.decode(out.tokenIds, { skipSpecialTokens: true })).toBe(full.text.slice(0, at + stop.length));
    }
    llm.dispose();
  });
});

describe('Engine sampler contract', () => {
  it('carries log-probs to the deltas and the outputs of the requests that asked, and none to the others', () => {
    const llm = makeLLM(fakeRecipe());
    const prompt = [100, 101, 102];
    const [asked, plain] = llm.generate([prompt, prompt], [
      new SamplingParams({ temperature: 0, maxTokens: 5, ignoreEos: true, logprobs: 3 }),
      new SamplingParams({ temperature: 0, maxTokens: 5, ignoreEos: true }),
    ]);
    expect(asked!.logprobs).toHaveLength(5);
    asked!.logprobs!.forEach((lp, i) => {
      expect(lp.token).toBe(asked!.tokenIds[i]);
      expect(lp.top).toHaveLength(3);
      expect(lp.top[0]!.token).toBe(lp.token); // greedy: the chosen token is the most likely
      expect(lp.logprob).toBeLessThanOrEqual(0);
    });
    expect(plain!.logprobs).toBeUndefined();
    const id = llm.engine.addRequest(prompt, new SamplingParams({ temperature: 0, maxTokens: 1, logprobs: 0 }));
    const delta = llm.engine.step().deltas.find((d) => d.id === id)!;
    expect(delta.logprobs).toEqual([{ token: delta.tokenIds[0], logprob: expect.any(Number), top: [] }]);
    llm.dispose();
  });

  it("refuses a request whose parameters the recipe's sampler cannot honour, naming why, and queues nothing", () => {
    const llm = makeLLM(fakeRecipe());
    expect(() => llm.engine.addRequest([1, 2], new SamplingParams({ minP: 0.1 }))).toThrow(/addRequest: the test sampler has no minP/);
    expect(() => llm.generate([[1], [2]], [new SamplingParams(), new SamplingParams({ minP: 0.1 })])).toThrow(/generate: prompt 1: the test sampler has no minP/);
    expect(llm.engine.pending).toBe(0);
    llm.dispose();
  });
});

describe('Engine.stepAsync', () => {
  it('gives the tokens step() gives, and refuses a second step while one is in flight', async () => {
    const sync = makeLLM(fakeRecipe());
    const prompts = [[100, 101, 102], [7, 8, 9, 10]];
    const params = new SamplingParams({ temperature: 0, maxTokens: 4, ignoreEos: true });
    const expected = sync.generate(prompts, params).map((o) => o.tokenIds);
    sync.dispose();
    const llm = makeLLM(fakeRecipe());
    const ids = prompts.map((p) => llm.engine.addRequest(p, params));
    const got = new Map<number, number[]>(ids.map((id) => [id, []]));
    while (llm.engine.hasWork) {
      const next = llm.engine.stepAsync();
      expect(() => llm.engine.step()).toThrow(/a step is already in flight/);
      for (const d of (await next).deltas) got.get(d.id)!.push(...d.tokenIds);
    }
    expect(ids.map((id) => got.get(id))).toEqual(expected);
    llm.dispose();
  });

  it('a request aborted while its step is in flight gets no delta from it and is ended, its blocks freed, when the step is over', async () => {
    const llm = makeLLM(fakeRecipe());
    const params = new SamplingParams({ temperature: 0, maxTokens: 8, ignoreEos: true });
    const id = llm.engine.addRequest([100, 101, 102], params);
    await llm.engine.stepAsync(); // the prompt's step
    const next = llm.engine.stepAsync();
    expect(llm.engine.abort(id)).toBe(true);
    expect(llm.engine.pending).toBe(1); // still in the step's plan
    const result = await next;
    expect(result.deltas.filter((d) => d.id === id)).toEqual([]);
    expect(llm.engine.pending).toBe(0);
    expect(llm.engine.hasWork).toBe(false);
    expect(llm.engine.abort(id)).toBe(false);
    llm.dispose();
  });

  it('a step that fails ends its own sequences and every request aborted while it was in flight, in the plan or not', async () => {
    // The sampler fails on the step (as reading the tokens of a failed device step does); the
    // serial scheduler runs one request a step, so the second request is not in that step's plan.
    const fake = fakeRecipe();
    let fail = false;
    const recipe: Recipe = {
      ...fake.recipe,
      build(ctx) {
        const parts = fake.recipe.build(ctx);
        const inner = parts.sampler;
        const failing: Sampler = Object.assign(Object.create(inner) as Sampler, {
          sample: (logits: Tensor, seqs: readonly Sequence[]) => {
            if (fail) throw new Error('the device failed under the step');
            return inner.sample(logits, seqs);
          },
        });
        return { ...parts, sampler: failing };
      },
    };
    const llm = LLM.create({ recipe, model: MODEL, device: 'cpu', log: quiet });
    const params = new SamplingParams({ temperature: 0, maxTokens: 8, ignoreEos: true });
    const first = llm.engine.addRequest([100, 101, 102], params);
    const waiting = llm.engine.addRequest([7, 8, 9], params);
    await llm.engine.stepAsync();
    fail = true;
    const next = llm.engine.stepAsync();
    expect(llm.engine.abort(waiting)).toBe(true); // ended once the step is over
    await expect(next).rejects.toThrow(/the device failed/);
    expect(llm.engine.pending).toBe(0);
    expect(llm.engine.hasWork).toBe(false);
    expect(llm.engine.abort(first)).toBe(false);
    fail = false;
    expect(llm.engine.step().deltas).toEqual([]); // nothing left, nothing in flight
    llm.dispose();
  });
});

describe('runWorkload', () => {
  it('runs every request, counts tokens and rates, reports progress after every step', () => {
    const fake = fakeRecipe();
    const llm = makeLLM(fake);
    const seen: GenerateProgress[] = [];
    const lines: string[] = [];
    const r = runWorkload(llm, tinyWorkload(), { progress: false, log: (s) => lines.push(s), onProgress: (p) => seen.push({ ...p }) });
    expect(r.partial).toBe(false);
    expect(r.finishedRequests).toBe(3);
    expect(r.requests).toBe(3);
    expect(r.outputTokens).toBe(18);
    expect(r.promptTokens).toBe(24);
    expect(r.outputTokPerS).toBeCloseTo(18 / r.seconds, 6);
    expect(r.stats.prefillTokens).toBe(24);
    expect(r.stats.decodeTokens).toBe(15);
    expect(r.prefillTokPerS).toBeCloseTo(24 / r.stats.prefillSeconds, 6);
    expect(r.decodeTokPerS).toBeCloseTo(15 / r.stats.decodeSeconds, 6);
    expect(r.peakMemoryBytes).toBeGreaterThan(0);
    expect(r.warmup).toMatchObject({ requests: 2, promptTokens: 6 + 8, maxTokens: 4 });
    // The warm-up's 8 steps plus the run's 18.
    expect(fake.runner().calls).toBe(8 + 18);
    // Progress: once per step of the timed run (not the warm-up), monotone, ending at the totals.
    expect(seen).toHaveLength(18);
    expect(seen.map((p) => p.outputTokens)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
    expect(seen.at(-1)).toMatchObject({ finishedRequests: 3, totalRequests: 3, outputTokens: 18 });
    // Not a terminal here: a line every ~10% instead of a bar.
    expect(lines.length).toBeGreaterThanOrEqual(9);
    expect(lines.length).toBeLessThanOrEqual(11);
    expect(lines.at(-1)).toMatch(/tiny: 100% \| 3\/3 requests \| 18\/18 output tokens \| [\d.]+ tok\/s/);
    expect(summarizeRun(r)).toMatch(/^tiny: [\d.]+ output tok\/s \(18 tokens in/);
    llm.dispose();
  });

  it('keeps the warm-up out of the timing: a one-time cost in the first forward is not counted', () => {
    const firstCallSlow = (call: number): number => (call === 0 ? 400 : 0);
    const warm = fakeRecipe({ sleep: firstCallSlow });
    const withWarmup = runWorkload(makeLLM(warm), tinyWorkload(), { progress: false, log: quiet });
    expect(withWarmup.warmup!.seconds).toBeGreaterThanOrEqual(0.39);
    expect(withWarmup.seconds).toBeLessThan(0.35);

    const cold = fakeRecipe({ sleep: firstCallSlow });
    const without = runWorkload(makeLLM(cold), tinyWorkload(), { warmup: false, progress: false, log: quiet });
    expect(without.warmup).toBeUndefined();
    expect(without.seconds).toBeGreaterThanOrEqual(0.39);
    expect(cold.runner().calls).toBe(18);
  });

  it('stops at the time budget and marks the run partial, counting only the tokens generated', () => {
    const fake = fakeRecipe({ sleep: () => 25 });
    const llm = makeLLM(fake);
    let last: GenerateProgress | undefined;
    const r = runWorkload(llm, tinyWorkload(), { timeBudgetS: 0.1, warmup: false, progress: false, log: quiet, onProgress: (p) => (last = { ...p }) });
    expect(r.partial).toBe(true);
    expect(r.timeBudgetS).toBe(0.1);
    expect(r.outputTokens).toBeGreaterThan(0);
    expect(r.outputTokens).toBeLessThan(18);
    expect(r.outputTokens).toBe(fake.runner().calls); // one token per step, one request at a time
    expect(r.outputTokens).toBe(last!.outputTokens);
    expect(r.finishedRequests).toBeLessThan(3);
    // Only the requests that started count their prompt.
    expect(r.promptTokens).toBe([6, 8, 10].slice(0, r.finishedRequests + (r.outputTokens > 6 * r.finishedRequests ? 1 : 0)).reduce((a, b) => a + b, 0));
    expect(r.seconds).toBeLessThan(0.1 + 0.2);
    expect(r.outputTokPerS).toBeCloseTo(r.outputTokens / r.seconds, 6);
    const rec = toBenchRecord(r, { lesson: 3, recipe: 'fake-serial', device: 'cpu', model: modelInfo(llm) });
    expect(rec.partial).toBe(true);
    expect(rec.settings.timeBudgetS).toBe(0.1);
    expect(rec.results.finishedRequests).toBe(r.finishedRequests);
    expect(rec.results.outputTokens).toBe(r.outputTokens);
    llm.dispose();
  });

  it('rejects a budget that is not a positive number', () => {
    const llm = makeLLM(fakeRecipe());
    expect(() => runWorkload(llm, tinyWorkload(), { timeBudgetS: 0, log: quiet })).toThrow(/timeBudgetS must be a positive number/);
  });

  it('runs the real course workload cut to its first two requests', () => {
    const fake = fakeRecipe();
    const w = firstRequests(courseWorkload(), 2);
    const r = runWorkload(makeLLM(fake), w, { progress: false, log: quiet });
    expect(r.outputTokens).toBe(256);
    expect(r.promptTokens).toBe(496 + 210);
    expect(r.stats.prefillTokens).toBe(496 + 210);
    expect(r.workload.name).toBe('course-2of32');
  });
});

describe('measureWorkload', () => {
  it('warms up once, estimates, runs the workload `repeats` times and keeps the median run', () => {
    const llm = makeLLM(fakeRecipe({ sleep: (call) => (call >= 30 && call < 48 ? 3 : 0) })); // the calls of one run are slower
    const lines: string[] = [];
    // onRunStart: once per timed run, after the warm-up and the calibration (their steps come before the first).
    const events: string[] = [];
    const m = measureWorkload(llm, tinyWorkload(), { repeats: 3, progress: false, log: (l) => lines.push(l), onRunStart: () => events.push('start'), onProgress: () => events.push('step') });
    expect(events.filter((e) => e === 'start')).toHaveLength(3);
    expect(events[0]).toBe('start');
    const stepsPerRun = events.indexOf('start', 1) - 1;
    expect(stepsPerRun).toBeGreaterThan(0);
    expect(events.join(' ')).toBe(Array.from({ length: 3 }, () => ['start', ...Array(stepsPerRun).fill('step')].join(' ')).join(' '));
    expect(m.repeats.count).toBe(3);
    expect(m.repeats.outputTokPerS).toHaveLength(3);
    expect(m.result.outputTokPerS).toBe(m.repeats.outputTokPerS[m.repeats.resultsRun]);
    expect(m.result.outputTokPerS).toBe(m.repeats.medianOutputTokPerS);
    expect(m.result.warmup).toMatchObject({ requests: 2 });
    expect(lines[0]).toMatch(/^estimate: about .* per run, .* for 3 runs \(timed on 2 requests .* summed over the 3 requests one at a time\)/);
    llm.dispose();
  });

  it('estimates a batching engine by its decode steps, not request by request', () => {
    const llm = makeLLM(fakeRecipe({ shape: 'batched' }));
    warmUp(llm, tinyWorkload());
    // Three requests of 6 output tokens: 5 decode steps with all three in each.
    expect(estimateRun(llm, tinyWorkload()).basis).toMatch(/, 5 decode steps of 3 requests at most$/);
    llm.dispose();
  });
});

describe('records', () => {
  it('writes a BenchRecord with every schema field filled, into AIOS_RESULTS_DIR', () => {
    expect(RESULTS_DIR).toBe(RESULTS);
    expect(resultsDir()).toBe(RESULTS);
    const fake = fakeRecipe({ lesson: 5, kv: true });
    const llm = makeLLM(fake);
    const r = runWorkload(llm, tinyWorkload(), { timeBudgetS: 60, progress: false, log: quiet });
    const rec = benchRecordFor(llm, r, { settings: { note: 'test' } });
    expect(rec.gpus).toBe(0); // the CPU: no GPU used
    const file = writeRecord(rec);
    expect(path.dirname(file)).toBe(RESULTS);
    expect(path.basename(file)).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z_lesson05_bench_.+\.json$/);
    const back = JSON.parse(readFileSync(file, 'utf8')) as BenchRecord;
    expect(recordProblem(back)).toBeUndefined(); // what pnpm chart accepts
    expect(back).toMatchObject({
      schema: 1,
      kind: 'bench',
      lesson: 5,
      recipe: 'fake-serial',
      workload: 'tiny',
      partial: false,
      model: { name: 'qwen3-tiny-random', dtype: 'f32', params: paramCount(PRESETS.tiny), randomWeights: true },
      hardware: { backend: 'cpu' },
    });
    expect(Number.isNaN(Date.parse(back.date))).toBe(false);
    expect(back.commit).toMatch(/^([0-9a-f]{12}(\+dirty)?|unknown)$/);
    expect(back.hardware.card.length).toBeGreaterThan(0);
    expect(back.hardware.cpuCores).toBe(os.cpus().length);
    expect(back.settings).toMatchObject({ device: 'cpu', dtype: 'f32', workload: 'tiny', requests: 3, timeBudgetS: 60, note: 'test' });
    expect(back.settings.warmup).toMatchObject({ requests: 2, promptTokens: 14, maxTokens: 4 });
    expect((back.settings.warmup as { seconds: number }).seconds).toBeGreaterThan(0);
    expect(back.settings.kvCache).toEqual({
      reservedBytes: 4096,
      usedBytes: 64 * (8 + 18),
      peakReservedBytes: 4096,
      peakUsedBytes: 64 * (8 + 18),
      // The timed run is calls 9..26 (the warm-up made 8): means over its steps.
      meanReservedBytes: 4096,
      meanUsedBytes: (64 * (9 + 26)) / 2,
    });
    const { firstTokenMs: ttft, ...res } = back.results;
    // Time to first token: one request at a time, so the 3 first tokens come in order, each before the run ends.
    expect(ttft).toMatchObject({ requests: 3 });
    expect(0 < ttft!.p50 && ttft!.p50 <= ttft!.p99 && ttft!.p99 <= ttft!.max && ttft!.max < 1000 * res.seconds).toBe(true);
    expect(res).toEqual({
      requests: 3,
      finishedRequests: 3,
      promptTokens: 24,
      outputTokens: 18,
      seconds: r.seconds,
      outputTokPerS: r.outputTokPerS,
      prefillTokPerS: r.prefillTokPerS,
      decodeTokPerS: r.decodeTokPerS,
      peakMemoryBytes: r.peakMemoryBytes,
      // The counts behind the two rates: prefills of 6 + 8 + 10 prompt tokens, then 5 decode steps each.
      phases: { prefillTokens: 24, prefillSeconds: r.stats.prefillSeconds, decodeTokens: 15, decodeSeconds: r.stats.decodeSeconds },
      // One request at a time: 3 prefill steps and 15 decode steps, nothing preempted.
      steps: { count: 18, mixedTokens: 0, mixedSeconds: 0, enqueueSeconds: r.stats.enqueueSeconds, syncSeconds: r.stats.syncSeconds, preemptions: 0 },
    });
    expect(r.stats.enqueueSeconds + r.stats.syncSeconds).toBeLessThanOrEqual(r.stats.prefillSeconds + r.stats.decodeSeconds + 1e-9);
    const { phases, steps: _steps, prefixCache: _prefix, ...rates } = res;
    for (const v of [...Object.values(rates), ...Object.values(phases!)]) expect(Number.isFinite(v) && v > 0).toBe(true);
    expect(res.prefillTokPerS).toBeCloseTo(24 / phases!.prefillSeconds, 6);
    expect(res.decodeTokPerS).toBeCloseTo(15 / phases!.decodeSeconds, 6);
    // No lesson-00 record for this CPU: no roofline rather than a made-up one.
    expect(back.roofline).toBeUndefined();
    llm.dispose();
  });

  it('marks a subset workload in the settings and does not record a run that generated nothing', () => {
    const fake = fakeRecipe();
    const llm = makeLLM(fake);
    const r = runWorkload(llm, firstRequests(courseWorkload(), 1), { progress: false, log: quiet });
    const rec = benchRecordFor(llm, r);
    expect(rec.workload).toBe('course-1of32');
    expect(rec.settings.subset).toEqual({ requests: 1, of: 32 });
    const empty: BenchRunResult = { ...r, outputTokens: 0, partial: true };
    expect(() => toBenchRecord(empty, { lesson: 3, recipe: 'x', device: 'cpu', model: modelInfo(llm) })).toThrow(/generated no tokens/);
  });
});

function writeJson(dir: string, name: string, rec: AnyRecord): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(rec, null, 2));
  return file;
}

function benchRec(o: { lesson: number; date: string; card?: string; workload?: string; tok: number; partial?: boolean; model?: string }): BenchRecord {
  return {
    schema: 1,
    kind: 'bench',
    lesson: o.lesson,
    date: o.date,
    commit: 'abc',
    hardware: { backend: 'cuda', card: o.card ?? 'NVIDIA H100 80GB HBM3', gpuCount: 1, cpuCores: 16 },
    settings: {},
    recipe: 'r',
    workload: o.workload ?? 'course',
    model: { name: o.model ?? 'qwen3-0.6b-random', dtype: 'bf16', params: 1, randomWeights: true },
    partial: o.partial ?? false,
    results: { requests: 32, finishedRequests: 32, promptTokens: 1, outputTokens: 1, seconds: 1, outputTokPerS: o.tok, prefillTokPerS: 1, decodeTokPerS: 1, peakMemoryBytes: 1 },
  };
}

function envRec(o: { date: string; card: string; gbPerS: number; tflops: number; quick?: boolean }): AnyRecord {
  return {
    schema: 1,
    kind: 'environment',
    lesson: 0,
    date: o.date,
    commit: 'abc',
    hardware: { backend: 'cuda', card: o.card, gpuCount: 1, cpuCores: 16 },
    settings: { quick: o.quick ?? false },
    results: { copy: { gbPerS: o.gbPerS }, gemm: { tflops: o.tflops, dtype: 'bf16' } },
  };
}

describe('findLatestRecord', () => {
  const dir = scratchDir('aios-find-');
  const H100 = 'NVIDIA H100 80GB HBM3';
  // File names deliberately out of date order: the record's date decides.
  writeJson(dir, 'a.json', benchRec({ lesson: 4, date: '2026-12-03T00:00:00.000Z', tok: 300 }));
  writeJson(dir, 'b.json', benchRec({ lesson: 4, date: '2026-12-01T00:00:00.000Z', tok: 100 }));
  writeJson(dir, 'c.json', benchRec({ lesson: 4, date: '2026-12-05T00:00:00.000Z', tok: 50, partial: true }));
  writeJson(dir, 'd.json', benchRec({ lesson: 4, date: '2026-12-09T00:00:00.000Z', tok: 999, card: 'NVIDIA H200' }));
  writeJson(dir, 'e.json', benchRec({ lesson: 4, date: '2026-12-09T00:00:00.000Z', tok: 777, workload: 'throughput' }));
  writeJson(dir, 'f.json', benchRec({ lesson: 5, date: '2026-12-09T00:00:00.000Z', tok: 888 }));
  writeJson(dir, 'g.json', benchRec({ lesson: 4, date: '2026-12-10T00:00:00.000Z', tok: 5, model: 'Qwen3-8B' }));
  writeJson(dir, 'h.json', envRec({ date: '2026-12-01T00:00:00.000Z', card: H100, gbPerS: 3000, tflops: 600 }));
  writeJson(dir, 'i.json', envRec({ date: '2026-12-02T00:00:00.000Z', card: H100, gbPerS: 3100, tflops: 650 }));
  writeJson(dir, 'j.json', envRec({ date: '2026-12-03T00:00:00.000Z', card: H100, gbPerS: 10, tflops: 1, quick: true }));
  writeFileSync(path.join(dir, 'broken.json'), '{ not json');
  mkdirSync(path.join(dir, 'sub'));

  it('picks the newest matching record by its date', () => {
    const f = findLatestRecord({ kind: 'bench', lesson: 4, workload: 'course', card: H100, model: 'qwen3-0.6b-random', dir });
    expect(f?.file).toBe('c.json');
    expect(f?.record.results.outputTokPerS).toBe(50);
    expect(findLatestRecord({ kind: 'bench', lesson: 4, workload: 'course', card: H100, dir })?.file).toBe('g.json');
    expect(findLatestRecord({ kind: 'bench', lesson: 4, workload: 'throughput', card: H100, dir })?.file).toBe('e.json');
    expect(findLatestRecord({ kind: 'bench', lesson: 4, workload: 'course', card: 'NVIDIA H200', dir })?.file).toBe('d.json');
    expect(findLatestRecord({ kind: 'bench', lesson: 5, dir })?.file).toBe('f.json');
    expect(findLatestRecord({ kind: 'bench', lesson: 6, dir })).toBeUndefined();
    expect(findLatestRecord({ kind: 'bench', lesson: 4, dir: path.join(dir, 'missing') })).toBeUndefined();
  });

  it('can prefer the newest complete run over a newer partial one', () => {
    const f = findLatestRecord({ kind: 'bench', lesson: 4, workload: 'course', card: H100, model: 'qwen3-0.6b-random', preferComplete: true, dir });
    expect(f?.file).toBe('a.json');
  });

  it('finds environment records, skipping --quick ones, and reads the card rates from them', () => {
    expect(findLatestRecord({ kind: 'environment', lesson: 0, card: H100, dir })?.file).toBe('i.json');
    expect(findLatestRecord({ kind: 'environment', lesson: 0, card: H100, preferFull: false, dir })?.file).toBe('j.json');
    expect(cardRates(H100, dir)).toEqual({ bandwidthGBps: 3100, gemmTflops: 650, card: H100, source: 'i.json' });
    expect(cardRates('Some CPU', dir)).toBeUndefined();
  });

  it('reads AIOS_RESULTS_DIR by default', () => {
    writeJson(RESULTS, 'zz-find.json', benchRec({ lesson: 9, date: '2030-01-01T00:00:00.000Z', tok: 42 }));
    expect(findLatestRecord({ kind: 'bench', lesson: 9 })?.record.results.outputTokPerS).toBe(42);
  });

  it('compares a run with the previous lesson', () => {
    const prev = findLatestRecord({ kind: 'bench', lesson: 4, workload: 'course', card: H100, model: 'qwen3-0.6b-random', preferComplete: true, dir });
    const current = { outputTokPerS: 750, partial: false, workload: { name: 'course' } } as BenchRunResult;
    expect(compareWithPrevious(prev, current, 4)).toBe('lesson 4 on this card: 300.0 tok/s; this run: 750.0 tok/s (2.50x)');
    expect(compareWithPrevious(undefined, current, 4)).toBe('lesson 4 has no course record on this card yet; this run: 750.0 tok/s');
  });

  it('puts the card roofline into the record when the card has a lesson-00 record', () => {
    const llm = makeLLM(fakeRecipe());
    const w = tinyWorkload();
    const roof = rooflineFor(llm.cfg, w, { shape: 'sequential', card: H100, dir });
    const rates = { bandwidthGBps: 3100, gemmTflops: 650, card: H100, source: 'i.json' };
    expect(roof).toEqual(workloadRoofline(llm.cfg, w, rates, 'sequential'));
    expect(rooflineFor(llm.cfg, w, { shape: 'batched', card: H100, dir })).toEqual(workloadRoofline(llm.cfg, w, rates, 'batched'));
    expect(rooflineFor(llm.cfg, w, { shape: 'sequential', card: 'no such card', dir })).toBeUndefined();
    // N GPUs: N times the bandwidth and the GEMM rate (collectives free: an upper bound).
    const two = rooflineFor(llm.cfg, w, { shape: 'batched', card: H100, dir, gpus: 2 })!;
    expect(two).toEqual(workloadRoofline(llm.cfg, w, { ...rates, bandwidthGBps: 6200, gemmTflops: 1300, source: 'i.json x 2 GPUs' }, 'batched'));
    expect(two.outputTokPerS).toBeGreaterThan(rooflineFor(llm.cfg, w, { shape: 'batched', card: H100, dir })!.outputTokPerS);
  });
});

describe('roofline', () => {
  // A toy model with numbers small enough to do by hand:
  //   hidden 4, 1 layer, 1 head of 4, 1 KV head, MLP 8, vocab 10, tied embeddings.
  //   params: embed 40 + layer (norms 4+4+4+4, q/k/v/o 16 each, gate/up/down 32 each = 176) + final norm 4 = 220
  //   LM head = the tied table = 40; decoder = 220 - 40 = 180; weight bytes = 2 x 220 = 440; KV = 2*1*1*4*2 = 16 B/token.
  const toy: Qwen3Config = { ...PRESETS.tiny, hiddenSize: 4, numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: 4, intermediateSize: 8, vocabSize: 10, tieWordEmbeddings: true };
  // 440 bytes/s and 1000 FLOP/s: one weight read takes 1 s.
  const rates = { bandwidthGBps: 440e-9, gemmTflops: 1e-9 };
  const requests = [
    { promptTokens: 3, outputTokens: 3 },
    { promptTokens: 5, outputTokens: 2 },
  ];

  it('counts the toy model by hand', () => {
    expect(modelCosts(toy)).toEqual({ params: 220, decoderParams: 180, headParams: 40, weightBytes: 440, kvBytesPerToken: 16 });
    expect(kvBytesPerToken(toy)).toBe(16);
  });

  it('one request at a time: each prefill and decode step at max(bytes / bandwidth, FLOPs / rate)', () => {
    // request 1: prefill max((2*180*3 + 2*40) / 1000 = 1.16, 440/440 = 1) = 1.16
    //            decode j=1: max((440 + 16*4) / 440 = 1.145455, 440/1000) ; j=2: (440 + 16*5) / 440 = 1.181818
    // request 2: prefill max((2*180*5 + 80) / 1000 = 1.88, 1) = 1.88 ; decode j=1: (440 + 16*6) / 440 = 1.218182
    const seconds = 1.16 + 504 / 440 + 520 / 440 + 1.88 + 536 / 440; // 6.585455
    const r = sequentialRoofline(toy, requests, rates);
    expect(r.seconds).toBeCloseTo(6.585455, 5);
    expect(r.seconds).toBeCloseTo(seconds, 12);
    expect(r.outputTokPerS).toBeCloseTo(5 / 6.585455, 5);
    expect(r.basis).toMatch(/^one request at a time, 2 requests, 8 prompt \+ 5 output tokens; model 220 params \(1 layers\), 440 B bf16 weights per forward, 16 B KV per token; 4\.40e-7 GB\/s copy, 1\.00e-9 TFLOP\/s .*: prefill 3\.040 s \+ 3 decode steps 3\.545 s = 6\.585 s$/);
    expect(r.basis).not.toMatch(/\n/);
  });

  it('all requests in one batch: one prefill, then steps over the requests still running', () => {
    // prefill: max((2*180*8 + 2*40*2) / 1000 = 3.04, 1) = 3.04
    // step 1, both running: max((440 + 16*((3+1) + (5+1))) / 440 = 600/440, 2*220*2/1000 = 0.88) = 1.363636
    // step 2, request 1 only: max((440 + 16*5) / 440, 0.44) = 1.181818
    const r = batchedRoofline(toy, requests, rates);
    expect(r.seconds).toBeCloseTo(3.04 + 600 / 440 + 520 / 440, 12);
    expect(r.seconds).toBeCloseTo(5.585455, 5);
    expect(r.outputTokPerS).toBeCloseTo(5 / 5.585455, 5);
    expect(r.basis).toMatch(/^all 2 requests in one batch/);
  });

  it('with the compute roof binding decode: a fast memory, a slow GEMM', () => {
    const slowGemm = { bandwidthGBps: 1, gemmTflops: 1e-9 }; // bytes are ~free; 1000 FLOP/s
    // sequential: prefills 1.16 + 1.88, three decode steps at 2*220 / 1000 = 0.44 each.
    expect(sequentialRoofline(toy, requests, slowGemm).seconds).toBeCloseTo(1.16 + 1.88 + 3 * 0.44, 5);
    // batched: prefill 3.04, step 1 two sequences 0.88, step 2 one sequence 0.44.
    expect(batchedRoofline(toy, requests, slowGemm).seconds).toBeCloseTo(3.04 + 0.88 + 0.44, 5);
  });

  it('an untied model reads its input embedding only by rows', () => {
    const untied = { ...toy, tieWordEmbeddings: false };
    expect(modelCosts(untied)).toEqual({ params: 260, decoderParams: 180, headParams: 40, weightBytes: 440, kvBytesPerToken: 16 });
  });

  it('matches the worked example of docs/benchmarking.md for Qwen3-0.6B', () => {
    const c = modelCosts(PRESETS['0.6B']);
    expect(c.params).toBe(596_049_920);
    expect(c.weightBytes).toBe(2 * 596_049_920); // 1.19 GB a decode step
    expect(c.kvBytesPerToken).toBe(2 * 28 * 8 * 128 * 2);
  });

  it('the throughput workload is bounded far below the batched rate when served one request at a time', () => {
    const h200 = { bandwidthGBps: 4177.3, gemmTflops: 778.1, card: 'NVIDIA H200' };
    const course = courseWorkload();
    const seq = workloadRoofline(PRESETS['0.6B'], course, h200, 'sequential');
    const bat = workloadRoofline(PRESETS['0.6B'], course, h200, 'batched');
    expect(bat.outputTokPerS).toBeGreaterThan(10 * seq.outputTokPerS);
    // One sequence reads >= 1.19 GB a step: at most 4177.3e9 / 1.192e9 = 3,504 steps a second.
    expect(seq.outputTokPerS).toBeLessThan(4177.3e9 / (2 * 596_049_920));
    expect(seq.basis).toContain('NVIDIA H200 4,177 GB/s copy, 778.1 TFLOP/s bf16 GEMM');
  });

  it('keeps runs with other engine limits apart: a lesson compares itself with a run of its own limits', () => {
    const dir = scratchDir('aios-limits-');
    const at = (tok: number, date: string, engine?: object) => ({ ...benchRec({ lesson: 7, date, tok, workload: 'throughput' }), settings: engine ? { engineShape: 'batched', engine } : {} });
    writeJson(dir, 'default.json', at(9000, '2026-12-01T00:00:00.000Z', { maxNumSeqs: 256, maxNumBatchedTokens: 16384 }));
    writeJson(dir, 'limited.json', at(3600, '2026-12-02T00:00:00.000Z', { maxNumSeqs: 64, maxNumBatchedTokens: 16384 }));
    writeJson(dir, 'old.json', at(100, '2026-11-01T00:00:00.000Z'));
    expect(limitsTag({ maxNumSeqs: 64, maxNumBatchedTokens: 16384 })).toBe('64 seqs/step');
    expect(limitsTag({ maxNumSeqs: 256, maxNumBatchedTokens: 16384 })).toBe('');
    expect(limitsTag(undefined)).toBe('');
    // One request at a time, the step limits mean nothing; the pool's options still do.
    expect(limitsTag({ maxNumSeqs: 64, maxNumBatchedTokens: 16384 }, 'sequential')).toBe('');
    expect(limitsTag({ maxNumSeqs: 64, blockSize: 8, gpuMemoryUtilization: 0.5 }, 'sequential')).toBe('8-token blocks, 50% of memory');
    // Lesson 14: a run over several GPUs is its own series, named by its GPU count.
    expect(limitsTag({ maxNumSeqs: 256, maxNumBatchedTokens: 16384, tensorParallelSize: 2 })).toBe('2 GPUs (tensor parallel)');
    expect(limitsTag({ maxNumSeqs: 256, maxNumBatchedTokens: 16384, tensorParallelSize: 1 })).toBe('');
    expect(findLatestRecord({ kind: 'bench', lesson: 7, workload: 'throughput', engine: { maxNumSeqs: 256, maxNumBatchedTokens: 16384 }, dir })?.file).toBe('default.json');
    expect(findLatestRecord({ kind: 'bench', lesson: 7, workload: 'throughput', engine: { maxNumSeqs: 64, maxNumBatchedTokens: 16384 }, dir })?.file).toBe('limited.json');
    expect(findLatestRecord({ kind: 'bench', lesson: 7, workload: 'throughput', dir })?.file).toBe('limited.json');
  });

  it("takes a record's engine shape from its settings; records from before the field are one-at-a-time lessons", () => {
    const old = benchRec({ lesson: 6, date: '2026-12-01T00:00:00.000Z', tok: 1 });
    expect(recordEngineShape(old)).toBe('sequential');
    expect(recordEngineShape({ ...old, lesson: 8, settings: { ...old.settings, engineShape: 'batched' } })).toBe('batched');
  });

  it('reads rates from a lesson-00 record and refuses bad input', () => {
    expect(ratesFromEnvironment(envRec({ date: '2026-12-01T00:00:00.000Z', card: 'X', gbPerS: 5, tflops: 7 }), 'x.json')).toEqual({ bandwidthGBps: 5, gemmTflops: 7, card: 'X', source: 'x.json' });
    expect(ratesFromEnvironment(benchRec({ lesson: 3, date: '2026-12-01T00:00:00.000Z', tok: 1 }))).toBeUndefined();
    expect(() => sequentialRoofline(toy, [], rates)).toThrow(/no requests/);
    expect(() => batchedRoofline(toy, requests, { bandwidthGBps: 0, gemmTflops: 1 })).toThrow(/must be positive/);
    expect(() => sequentialRoofline(toy, [{ promptTokens: 0, outputTokens: 1 }], rates)).toThrow(/request 0/);
  });

  it('reads the committed H200 lesson-00 record', () => {
    const dir = path.resolve(import.meta.dirname, '../../bench-results');
    const rates = cardRates('NVIDIA H200', dir);
    expect(rates?.bandwidthGBps).toBeGreaterThan(1000);
    expect(rates?.gemmTflops).toBeGreaterThan(100);
  });
});

describe('shards of a run', () => {
  // The course workload in 4 shards on the fake serial recipe as lesson 6, each
  // recorded with the sequential roofline of a made-up card, then merged.
  const rates = { bandwidthGBps: 3000, gemmTflops: 800, card: 'test card' };
  const full = courseWorkload();
  const fake = fakeRecipe({ lesson: 6, kv: true });
  const llm = makeLLM(fake);
  const shards = [1, 2, 3, 4].map((k) => {
    const w = shardOf(full, k, 4);
    const result = runWorkload(llm, w, { progress: false, log: quiet });
    const record = benchRecordFor(llm, result, { roofline: workloadRoofline(llm.cfg, w, rates, 'sequential') });
    return { file: `shard${k}.json`, record, result };
  });
  const inputs = shards.map(({ file, record }) => ({ file, record }));
  const merged = mergeShardRecords(inputs);

  it('each shard records which requests it ran and the phase counts behind its rates', () => {
    for (const [k, s] of shards.entries()) {
      expect(s.record.workload).toBe(`course-shard${k + 1}of4`);
      expect(s.record.settings.shard).toMatchObject({ index: k + 1, count: 4, requestIndices: shardOf(full, k + 1, 4).shard!.requestIndices });
      expect(s.record.results.phases).toEqual({
        prefillTokens: s.result.stats.prefillTokens,
        prefillSeconds: s.result.stats.prefillSeconds,
        decodeTokens: s.result.stats.decodeTokens,
        decodeSeconds: s.result.stats.decodeSeconds,
      });
    }
  });

  it('adds the shards up into one complete record of the whole workload', () => {
    expect(recordProblem(merged)).toBeUndefined();
    expect(merged).toMatchObject({ kind: 'bench', lesson: 6, recipe: 'fake-serial', workload: 'course', partial: false, commit: shards[0]!.record.commit });
    const seconds = shards.reduce((n, s) => n + s.result.seconds, 0);
    const r = merged.results;
    expect(r).toMatchObject({ requests: 32, finishedRequests: 32, promptTokens: full.totals.promptTokens, outputTokens: 4096 });
    expect(r.seconds).toBeCloseTo(seconds, 9);
    expect(r.outputTokPerS).toBeCloseTo(4096 / seconds, 6);
    const p = r.phases!;
    expect(p.prefillTokens).toBe(full.totals.promptTokens);
    expect(p.decodeTokens).toBe(32 * 127);
    expect(r.prefillTokPerS).toBeCloseTo(p.prefillTokens / shards.reduce((n, s) => n + s.result.stats.prefillSeconds, 0), 6);
    expect(r.decodeTokPerS).toBeCloseTo(p.decodeTokens / shards.reduce((n, s) => n + s.result.stats.decodeSeconds, 0), 6);
    expect(r.peakMemoryBytes).toBe(Math.max(...shards.map((s) => s.result.peakMemoryBytes)));
    expect(merged.settings).toMatchObject({ workload: 'course', requests: 32, device: 'cpu', dtype: 'f32' });
    expect(merged.settings.kvCache).toEqual({ peakReservedBytes: 4096, peakUsedBytes: Math.max(...shards.map((s) => (s.record.settings.kvCache as { peakUsedBytes: number }).peakUsedBytes)) });
    expect(merged.settings.shard).toBeUndefined();
    expect(merged.settings.timing).toMatch(/sum of the wall times of 4 shard runs/);
    expect((merged.settings.shards as { file: string; index: number }[]).map((s) => [s.file, s.index])).toEqual([1, 2, 3, 4].map((k) => [`shard${k}.json`, k]));
    // One request at a time, the bound adds up too: the merged roofline is the whole workload's.
    const whole = workloadRoofline(llm.cfg, full, rates, 'sequential');
    expect(merged.roofline!.seconds!).toBeCloseTo(whole.seconds, 9);
    expect(merged.roofline!.outputTokPerS).toBeCloseTo(whole.outputTokPerS, 6);
    // Given in any order, the same record.
    expect(mergeShardRecords([...inputs].reverse()).results).toEqual(merged.results);
  });

  it('refuses what does not add up, naming the shard', () => {
    const edit = (k: number, change: (r: BenchRecord) => void): { file: string; record: BenchRecord }[] =>
      inputs.map((x, i) => {
        if (i !== k) return x;
        const record = structuredClone(x.record);
        change(record);
        return { file: x.file, record };
      });
    expect(() => mergeShardRecords(inputs.slice(0, 3))).toThrow(/cut into 4 shards; 3 record\(s\) given/);
    expect(() => mergeShardRecords([inputs[0]!, inputs[1]!, inputs[2]!, inputs[2]!])).toThrow(/shard3\.json: shard 3 of 4 is given twice/);
    expect(() => mergeShardRecords([...inputs, inputs[0]!])).toThrow(/5 record\(s\) given \(records of more than one run\? name the records of one run\)/);
    expect(() => mergeShardRecords(edit(1, (r) => (r.partial = true)))).toThrow(/shard2\.json: shard 2 stopped early/);
    expect(() => mergeShardRecords(edit(2, (r) => (r.hardware.card = 'another card')))).toThrow(/shard3\.json: its card \(another card\) differs/);
    expect(() => mergeShardRecords(edit(3, (r) => (r.commit = 'abc')))).toThrow(/shard4\.json: its commit/);
    expect(() => mergeShardRecords(edit(3, (r) => (r.settings.dtype = 'bf16')))).toThrow(/shard4\.json: its settings\.dtype \("bf16"\) differs/);
    expect(() => mergeShardRecords(edit(1, (r) => (r.results.outputTokens -= 1)))).toThrow(/shard2\.json: \d+ output tokens from \d+ requests; the shard has/);
    expect(() => mergeShardRecords(edit(0, (r) => (r.settings.shard as { requestIndices: number[] }).requestIndices.reverse()))).toThrow(/shard1\.json: its requests are not shard 1 of 4/);
    expect(() => mergeShardRecords(edit(0, (r) => delete r.results.phases))).toThrow(/shard1\.json: no results\.phases/);
    expect(() => mergeShardRecords(edit(0, (r) => delete r.settings.shard))).toThrow(/shard1\.json: not a shard record/);
    // A batching lesson: a request's time depends on its neighbours, so shards do not add up.
    const batched = inputs.map(({ file, record }) => ({ file, record: { ...record, lesson: 8, settings: { ...record.settings, engineShape: 'batched' } } }));
    expect(() => mergeShardRecords(batched)).toThrow(/lesson 8 batches requests/);
    expect(() => mergeShardRecords([])).toThrow(/no shard records/);
    const whole = { file: 'whole.json', record: { ...inputs[0]!.record, workload: 'course' } };
    expect(() => mergeShardRecords([whole])).toThrow(/whole\.json: workload "course" is not a shard/);
  });
});

describe('pnpm bench merge', () => {
  // The fake shards of above, recorded without a roofline (as on a host where the
  // card's lesson-00 record was not at hand), merged by the CLI in a results folder
  // that has the card's lesson-00 record: the CLI adds the whole workload's roofline.
  const dir = scratchDir('aios-merge-');
  const shardDir = path.join(dir, 'shards');
  mkdirSync(shardDir);
  const fake = fakeRecipe({ lesson: 6 });
  const llm = makeLLM(fake);
  const full = courseWorkload();
  const files = [1, 2].map((k) => {
    const rec = benchRecordFor(llm, runWorkload(llm, shardOf(full, k, 2), { progress: false, log: quiet }));
    rec.date = `2026-12-0${k}T00:00:00.000Z`;
    return writeJson(shardDir, `shard${k}.json`, rec);
  });
  const card = benchRecordFor(llm, runWorkload(llm, firstRequests(full, 1), { progress: false, log: quiet })).hardware.card;
  writeJson(dir, 'env.json', envRec({ date: '2026-11-01T00:00:00.000Z', card, gbPerS: 100, tflops: 2 }));
  const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  const cli = path.join(REPO_ROOT, 'engine-core/src/cli/bench.ts');
  const env = { ...process.env, AIOS_RESULTS_DIR: dir };

  it('writes the whole run with its roofline into the results folder', () => {
    expect(files.every((f) => JSON.parse(readFileSync(f, 'utf8')).roofline === undefined)).toBe(true);
    const out = execFileSync(tsx, [cli, 'merge', ...files], { env }).toString();
    expect(out).toMatch(/shard 1\/2: 16 requests, 2048 output tokens/);
    expect(out).toMatch(/lesson 06 course on .+: [\d.]+ output tok\/s \(4096 tokens in [\d.]+ s summed over 2 shards/);
    const written = readdirSync(dir).filter((f) => f.endsWith('_lesson06_bench_' + card.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') + '.json'));
    expect(written).toHaveLength(1);
    const merged = JSON.parse(readFileSync(path.join(dir, written[0]!), 'utf8')) as BenchRecord;
    expect(merged).toMatchObject({ workload: 'course', partial: false, date: '2026-12-02T00:00:00.000Z', results: { requests: 32, outputTokens: 4096 } });
    const roof = workloadRoofline(PRESETS.tiny, full, { bandwidthGBps: 100, gemmTflops: 2, card, source: 'env.json' }, 'sequential');
    expect(merged.roofline).toEqual({ outputTokPerS: roof.outputTokPerS, seconds: roof.seconds, basis: roof.basis });
  });

  it('exits 2 with the reason when the shards do not make a whole run', () => {
    const r = spawnSync(tsx, [cli, 'merge', files[0]!], { env });
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/cut into 2 shards; 1 record\(s\) given/);
    const none = spawnSync(tsx, [cli, 'merge'], { env });
    expect(none.status).toBe(2);
    expect(none.stderr.toString()).toMatch(/name the shard records to merge/);
  });
});

describe('time to first token and the prefix-cache line', () => {
  it("quantiles interpolate between ranks as numpy's default does", () => {
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantile(Array.from({ length: 101 }, (_, i) => i), 0.99)).toBeCloseTo(99, 12);
    expect(quantile([10, 20], 0.99)).toBeCloseTo(19.9, 12);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNaN();
    expect(() => quantile([1], 1.5)).toThrow(/q must be in \[0, 1\]/);
  });

  it('a summary skips requests that produced no token', () => {
    expect(firstTokenSummary([30, NaN, 10, 20])).toEqual({ p50: 20, p99: 29.8, mean: 20, max: 30, requests: 3 });
    expect(firstTokenSummary([NaN])).toBeUndefined();
  });

  it('says what the cache saved, and nothing for an engine without one', () => {
    const phases = { prefillTokens: 300, prefillSeconds: 1, decodeTokens: 0, decodeSeconds: 0 };
    expect(describePrefixCache({ phases, promptTokens: 1000 })).toBeUndefined();
    const line = describePrefixCache({ phases, promptTokens: 1000, prefixCache: { queries: 4, queryTokens: 1000, hits: 3, hitBlocks: 44, hitTokens: 704, revivedBlocks: 2, evictions: 0 } });
    expect(line).toBe(
      'prefix cache: 3 of 4 admissions found cached blocks; 704 of their 1,000 tokens (70.4%) were not prefilled (44 blocks, 2 of them revived from the evictable list); ' +
        'the prefill ran 300 tokens for 1,000 prompt tokens; 0 cached blocks evicted',
    );
  });
});

describe("a record's environment switches", () => {
  it('keeps the AIOS_* switches a run had set (kernel and path choices), not the commit or the cache folder, in name order', () => {
    expect(engineEnvironment({ AIOS_TP_SAMPLE: 'gather', AIOS_COMMIT: 'abc', AIOS_CACHE: '/tmp/x', AIOS_SMALL_GEMM: '0', PATH: '/bin' })).toEqual({ env: { AIOS_SMALL_GEMM: '0', AIOS_TP_SAMPLE: 'gather' } });
    expect(engineEnvironment({ AIOS_COMMIT: 'abc', HOME: '/root' })).toEqual({});
  });
});
