// The benchmark harness: one warm-up, then a workload timed end to end through
// LLM.generateWithStats, with a progress bar (or a line every ~10% where stdout
// is not a terminal), an optional time budget, and the BenchRecord it makes.
//
//   const result = runWorkload(llm, courseWorkload(), { timeBudgetS: 600 });
//   const file = writeRecord(benchRecordFor(llm, result));
//
// findLatestRecord lets a lesson's demo compare itself with the previous lesson
// on the same card: "lesson 4 on this card: 96.1 tok/s; this run: 812.3 tok/s (8.45x)".
import path from 'node:path';

import cliProgress from 'cli-progress';

import { type Device, synchronize } from '../backend.ts';
import type { LLM } from '../engine/llm.ts';
import { SamplingParams } from '../engine/sampling-params.ts';
import type { EngineOptions, GenerateProgress, GenerateStats } from '../engine/types.ts';
import { type Qwen3Config, paramCount } from '../model/config.ts';
import { type AnyRecord, type BenchRecord, type EnvironmentRecord, type HardwareInfo, type LoadedRecord, type RepeatsSummary, type RunResults, currentCommit, hardwareInfo, limitsTag, loadRecords, recordEngineShape, recordLimitsTag, resultsDir } from './records.ts';

import { type CardRates, type EngineShape, type Roofline, ratesFromEnvironment, workloadRoofline } from './roofline.ts';
import type { Workload } from './workloads.ts';

export interface RunOptions {
  /** Run a short untimed generation first (default true): one-time costs stay out of the timing. */
  warmup?: boolean;
  /** Stop starting new steps after this many seconds of the timed run; the run is then partial. */
  timeBudgetS?: number;
  /** A progress bar on a terminal (default true); false or a non-terminal stdout prints a line every ~10% instead. */
  progress?: boolean;
  /** Where lines go (default console.log). */
  log?: (s: string) => void;
  /** Called after every step of the timed run, besides the harness's own display. */
  onProgress?: (p: GenerateProgress) => void;
  /** Shown after the workload's name in the progress lines ("run 2 of 3"). */
  label?: string;
  /** Called as each timed run starts, after any warm-up (a lesson counts what one run does: lesson 04's copies). */
  onRunStart?: () => void;
}

export interface WarmupInfo {
  requests: number;
  promptTokens: number;
  maxTokens: number;
  seconds: number;
}

export interface BenchRunResult extends RunResults {
  workload: Workload;
  /** True when the time budget stopped the run; the numbers cover what ran. */
  partial: boolean;
  timeBudgetS: number | undefined;
  warmup: WarmupInfo | undefined;
  stats: GenerateStats;
}

// engine-core/scripts/gpu-profile-attention.sh counts the warm-up's forwards (2 requests x WARMUP_MAX_TOKENS) to find the step it profiles: change both together.
const WARMUP_PROMPT_TOKENS = 16;
const WARMUP_MAX_TOKENS = 4;

function rate(tokens: number, seconds: number): number {
  return seconds > 0 ? tokens / seconds : 0;
}

/** The q-th quantile (0..1) of values, interpolated linearly between ranks (numpy's default); NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile: q must be in [0, 1], got ${q}`);
  if (values.length === 0) return NaN;
  const v = [...values].sort((a, b) => a - b);
  const pos = q * (v.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return v[lo]! + (v[hi]! - v[lo]!) * (pos - lo);
}

/** The p50, p99 (quantile) and mean of latencies (NaN each when there are none). */
export function latencySummary(ms: readonly number[]): { p50: number; p99: number; mean: number } {
  return { p50: quantile(ms, 0.5), p99: quantile(ms, 0.99), mean: ms.length ? ms.reduce((a, b) => a + b, 0) / ms.length : NaN };
}

/** Time-to-first-token figures over the requests that produced a token (undefined when none did). */
export function firstTokenSummary(firstTokenMs: readonly number[]): RunResults['firstTokenMs'] {
  const ms = firstTokenMs.filter((t) => Number.isFinite(t));
  if (ms.length === 0) return undefined;
  return { ...latencySummary(ms), max: Math.max(...ms), requests: ms.length };
}

/** Two small requests cut from the workload's first ones, with its sampling settings: every kernel the run uses runs once. */
function warmupRequests(workload: Workload): { prompts: number[][]; params: SamplingParams[] } {
  const src = workload.requests.slice(0, 2);
  if (src.length === 0) throw new Error(`runWorkload: the ${workload.name} workload has no requests`);
  while (src.length < 2) src.push(src[0]!);
  return {
    prompts: src.map((r) => r.promptIds.slice(0, WARMUP_PROMPT_TOKENS)),
    params: src.map((r) => new SamplingParams({ temperature: r.params.temperature, topK: r.params.topK, topP: r.params.topP, ignoreEos: true, maxTokens: WARMUP_MAX_TOKENS })),
  };
}

interface Display {
  update(p: GenerateProgress): void;
  stop(): void;
}

/** "1 min 05 s", "42 s", "0.8 s". */
export function formatSeconds(s: number): string {
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return m < 90 ? `${m} min ${String(Math.round(s - 60 * m)).padStart(2, '0')} s` : `${(s / 3600).toFixed(1)} h`;
}

/** Seconds left at the rate so far, or undefined before the first token. */
function etaSeconds(p: GenerateProgress, totalTokens: number): number | undefined {
  return p.outputTokens > 0 ? (p.elapsedSeconds * (totalTokens - p.outputTokens)) / p.outputTokens : undefined;
}

// Where stdout is not a terminal, a line every tenth of the work, and at least every
// PROGRESS_EVERY_S seconds, so a slow run shows it is moving from its first seconds on.
const PROGRESS_EVERY_S = 5;

function progressDisplay(workload: Workload, useBar: boolean, log: (s: string) => void, label: string): Display {
  const totalTokens = workload.totals.outputTokens;
  const name = label ? `${workload.name} ${label}` : workload.name;
  const tokps = (p: GenerateProgress): string => (p.elapsedSeconds > 0 ? (p.outputTokens / p.elapsedSeconds).toFixed(1) : '0.0');
  const eta = (p: GenerateProgress): string => {
    const s = etaSeconds(p, totalTokens);
    return s === undefined ? '?' : formatSeconds(s);
  };
  if (useBar) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stdout,
        format: `${name} {bar} {percentage}% | {requests}/{totalRequests} requests | {value}/{total} output tokens | {tokps} tok/s | {elapsed} elapsed, {left} left`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(totalTokens, 0, { requests: 0, totalRequests: workload.totals.requests, tokps: '0.0', elapsed: '0.0 s', left: '?' });
    return {
      update: (p) => bar.update(p.outputTokens, { requests: p.finishedRequests, tokps: tokps(p), elapsed: formatSeconds(p.elapsedSeconds), left: eta(p) }),
      stop: () => bar.stop(),
    };
  }
  log(`  ${name}: started: ${workload.totals.requests} requests, ${totalTokens} output tokens`);
  let nextTenth = 1;
  let lastLineS = 0;
  return {
    update: (p) => {
      const tenth = Math.floor((10 * p.outputTokens) / totalTokens);
      const due = p.elapsedSeconds - lastLineS >= PROGRESS_EVERY_S;
      if (tenth < nextTenth && !due) return;
      if (tenth >= nextTenth) nextTenth = tenth + 1;
      lastLineS = p.elapsedSeconds;
      const pct = Math.min(100, Math.floor((100 * p.outputTokens) / totalTokens));
      log(
        `  ${name}: ${pct}% | ${p.finishedRequests}/${p.totalRequests} requests | ${p.outputTokens}/${totalTokens} output tokens | ${tokps(p)} tok/s | ` +
          `${p.elapsedSeconds.toFixed(1)} s${p.outputTokens < totalTokens ? `, about ${eta(p)} left` : ''}`,
      );
    },
    stop: () => {},
  };
}

/** The harness's warm-up: two short requests cut from the workload, untimed, so every kernel the run uses has run once. */
export function warmUp(llm: LLM, workload: Workload): WarmupInfo {
  const w = warmupRequests(workload);
  const t0 = performance.now();
  llm.generateWithStats(w.prompts, w.params, { decodeText: false });
  synchronize(llm.device);
  return { requests: w.prompts.length, promptTokens: w.prompts.reduce((n, p) => n + p.length, 0), maxTokens: WARMUP_MAX_TOKENS, seconds: (performance.now() - t0) / 1000 };
}

/** Warms up, then runs the workload once, timed end to end. */
export function runWorkload(llm: LLM, workload: Workload, opts: RunOptions = {}): BenchRunResult {
  const log = opts.log ?? console.log;
  const budget = opts.timeBudgetS;
  if (budget !== undefined && !(budget > 0)) throw new RangeError(`runWorkload: timeBudgetS must be a positive number of seconds, got ${budget}`);

  const warmup = (opts.warmup ?? true) ? warmUp(llm, workload) : undefined;

  const display = progressDisplay(workload, (opts.progress ?? true) && process.stdout.isTTY === true, log, opts.label ?? '');
  const prompts = workload.requests.map((r) => r.promptIds);
  const params = workload.requests.map((r) => r.params);
  // Every run starts cold: what the warm-up, the calibration or an earlier repeat left in a prefix cache goes.
  llm.parts.scheduler.dropCache?.();
  opts.onRunStart?.();
  const t0 = performance.now();
  let run: ReturnType<LLM['generateWithStats']>;
  try {
    run = llm.generateWithStats(prompts, params, {
      decodeText: false,
      ...(budget !== undefined ? { deadlineMs: t0 + budget * 1000 } : {}),
      onProgress: (p) => {
        display.update(p);
        opts.onProgress?.(p);
      },
    });
    synchronize(llm.device);
  } finally {
    display.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  const { outputs, stats } = run;
  const promptTokens = outputs.reduce((n, o) => n + (o.tokenIds.length > 0 ? o.promptTokenIds.length : 0), 0);
  const firstTokenMs = firstTokenSummary(outputs.filter((o) => o.tokenIds.length > 0).map((o) => o.firstTokenMs));
  return {
    workload,
    partial: stats.partial,
    requests: workload.requests.length,
    finishedRequests: stats.finishedRequests,
    promptTokens,
    outputTokens: stats.outputTokens,
    seconds,
    outputTokPerS: rate(stats.outputTokens, seconds),
    prefillTokPerS: rate(stats.prefillTokens, stats.prefillSeconds),
    decodeTokPerS: rate(stats.decodeTokens, stats.decodeSeconds),
    peakMemoryBytes: stats.peakMemoryBytes,
    phases: { prefillTokens: stats.prefillTokens, prefillSeconds: stats.prefillSeconds, decodeTokens: stats.decodeTokens, decodeSeconds: stats.decodeSeconds },
    steps: { count: stats.steps, mixedTokens: stats.mixedTokens, mixedSeconds: stats.mixedSeconds, enqueueSeconds: stats.enqueueSeconds, syncSeconds: stats.syncSeconds, preemptions: stats.preemptions },
    ...(firstTokenMs ? { firstTokenMs } : {}),
    ...(stats.prefixCache ? { prefixCache: stats.prefixCache } : {}),
    timeBudgetS: budget,
    warmup,
    stats,
  };
}

/** One line for a terminal: tok/s, tokens, time, partial or not. */
export function summarizeRun(r: BenchRunResult): string {
  const part = r.partial ? ` PARTIAL (time budget ${r.timeBudgetS} s: ${r.finishedRequests}/${r.requests} requests finished)` : '';
  return (
    `${r.workload.name}: ${r.outputTokPerS.toFixed(1)} output tok/s (${r.outputTokens} tokens in ${r.seconds.toFixed(2)} s; ` +
    `prefill ${r.prefillTokPerS.toFixed(0)} tok/s, decode ${r.decodeTokPerS.toFixed(1)} tok/s, ` +
    `${r.firstTokenMs ? `time to first token p50 ${r.firstTokenMs.p50.toFixed(0)} ms, p99 ${r.firstTokenMs.p99.toFixed(0)} ms, ` : ''}peak memory ${(r.peakMemoryBytes / 2 ** 20).toFixed(0)} MiB)${part}`
  );
}

/** One line on what a prefix cache saved in a run, or undefined when the engine has none. */
export function describePrefixCache(r: Pick<BenchRunResult, 'prefixCache' | 'phases' | 'promptTokens'>): string | undefined {
  const pc = r.prefixCache;
  if (!pc) return undefined;
  const pct = (a: number, b: number) => (b > 0 ? `${((100 * a) / b).toFixed(1)}%` : '0%');
  return (
    `prefix cache: ${pc.hits} of ${pc.queries} admissions found cached blocks; ${pc.hitTokens.toLocaleString('en-US')} of their ${pc.queryTokens.toLocaleString('en-US')} tokens ` +
    `(${pct(pc.hitTokens, pc.queryTokens)}) were not prefilled (${pc.hitBlocks.toLocaleString('en-US')} blocks, ${pc.revivedBlocks.toLocaleString('en-US')} of them revived from the evictable list); ` +
    `the prefill ran ${r.phases.prefillTokens.toLocaleString('en-US')} tokens for ${r.promptTokens.toLocaleString('en-US')} prompt tokens; ${pc.evictions.toLocaleString('en-US')} cached blocks evicted`
  );
}

// ------------------------------------------------------------ repeats

export interface RepeatedRun {
  runs: BenchRunResult[];
  /** The run whose numbers stand for all of them (see RepeatsSummary.resultsRun). */
  median: BenchRunResult;
  repeats: RepeatsSummary;
}

/** The summary of several runs of one workload (at least one). */
export function summarizeRepeats(runs: readonly Pick<BenchRunResult, 'outputTokPerS' | 'seconds'>[]): RepeatsSummary {
  if (runs.length === 0) throw new RangeError('summarizeRepeats: no runs');
  const rates = runs.map((r) => r.outputTokPerS);
  const order = rates.map((_, i) => i).sort((a, b) => rates[a]! - rates[b]! || a - b);
  const n = rates.length;
  const mid = order[Math.floor((n - 1) / 2)]!;
  const median = n % 2 === 1 ? rates[mid]! : (rates[order[n / 2 - 1]!]! + rates[order[n / 2]!]!) / 2;
  const min = rates[order[0]!]!, max = rates[order[n - 1]!]!;
  return {
    count: n,
    outputTokPerS: rates,
    seconds: runs.map((r) => r.seconds),
    medianOutputTokPerS: median,
    minOutputTokPerS: min,
    maxOutputTokPerS: max,
    spreadPct: median > 0 ? (100 * (max - min)) / median : 0,
    resultsRun: mid,
  };
}

/** "3 runs: 117.2 / 118.0 / 120.1 tok/s, spread 2.5%", or "1 run" for one. */
export function describeRepeats(r: RepeatsSummary): string {
  if (r.count === 1) return '1 run (no spread: pass --repeats 3 to measure one)';
  return `${r.count} runs: ${r.outputTokPerS.map((v) => v.toFixed(1)).join(' / ')} tok/s, median ${r.medianOutputTokPerS.toFixed(1)}, spread ${r.spreadPct.toFixed(1)}%`;
}

/**
 * Runs the workload `repeats` times, none of them warmed up here (measureWorkload warms up
 * once before), and keeps every run's rate; the median run stands for them in the record.
 */
export function runRepeated(llm: LLM, workload: Workload, opts: Omit<RunOptions, 'warmup'> & { repeats?: number } = {}): RepeatedRun {
  const count = opts.repeats ?? 1;
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`runRepeated: repeats must be an integer >= 1, got ${count}`);
  const log = opts.log ?? console.log;
  const runs: BenchRunResult[] = [];
  for (let i = 0; i < count; i++) {
    const r = runWorkload(llm, workload, { ...opts, warmup: false, ...(count > 1 ? { label: `run ${i + 1} of ${count}` } : {}) });
    if (count > 1) log(`  run ${i + 1} of ${count}: ${r.outputTokPerS.toFixed(1)} output tok/s in ${r.seconds.toFixed(2)} s${r.partial ? ' (partial)' : ''}`);
    runs.push(r);
  }
  const repeats = summarizeRepeats(runs);
  return { runs, median: runs[repeats.resultsRun]!, repeats };
}

export interface MeasuredWorkload {
  /** The median run, with the warm-up that preceded the runs. */
  result: BenchRunResult;
  repeats: RepeatsSummary;
  estimate: Estimate;
}

/**
 * What `pnpm lesson N` and `pnpm bench` do with a lesson: warm up (untimed), estimate the run
 * from a calibration and print the estimate (`label` first), then run the workload `repeats`
 * times and keep the median run.
 */
export function measureWorkload(llm: LLM, workload: Workload, opts: Omit<RunOptions, 'warmup'> & { repeats: number; label?: string }): MeasuredWorkload {
  const log = opts.log ?? console.log;
  const warm = warmUp(llm, workload); // the calibration must not pay the one-time costs
  const estimate = estimateRun(llm, workload);
  const budget = opts.timeBudgetS;
  const perRun = budget !== undefined ? Math.min(estimate.seconds, budget) : estimate.seconds;
  log(
    `${opts.label ? `${opts.label} ` : ''}estimate: about ${formatSeconds(perRun)} per run${opts.repeats > 1 ? `, ${formatSeconds(perRun * opts.repeats)} for ${opts.repeats} runs` : ''}` +
      `${budget !== undefined && estimate.seconds > budget ? ` (the time budget stops each run at ${budget} s)` : ''} (${estimate.basis})`,
  );
  const rep = runRepeated(llm, workload, opts);
  return { result: { ...rep.median, warmup: warm }, repeats: rep.repeats, estimate };
}

// ------------------------------------------------------------ estimate

export interface Estimate {
  /** Seconds one run of the workload should take. */
  seconds: number;
  /** One line: how it was estimated. */
  basis: string;
}

/**
 * How long one run of the workload will take, before it starts: two calibration
 * requests (the workload's shortest and longest prompts, 3 output tokens each) time a
 * prefill and a decode step at two context lengths; prefill and step times are taken as
 * linear in the context between and beyond them, and summed over the workload's requests
 * one at a time, or, for an engine that batches (recipe.shape), over its decode steps.
 * Run it after a warm-up (warmUp), or one-time costs inflate it.
 */
export function estimateRun(llm: LLM, workload: Workload): Estimate {
  const reqs = workload.requests;
  if (reqs.length === 0) throw new RangeError(`estimateRun: the ${workload.name} workload has no requests`);
  const byLength = [...reqs].sort((a, b) => a.promptIds.length - b.promptIds.length);
  const probes = [byLength[0]!, byLength[byLength.length - 1]!];
  const points = probes.map((r) => {
    const params = new SamplingParams({ temperature: r.params.temperature, topK: r.params.topK, topP: r.params.topP, ignoreEos: true, maxTokens: 3 });
    const { stats } = llm.generateWithStats([r.promptIds], params, { decodeText: false });
    synchronize(llm.device);
    return { T: r.promptIds.length, prefill: stats.prefillSeconds, step: stats.decodeTokens > 0 ? stats.decodeSeconds / stats.decodeTokens : stats.prefillSeconds };
  });
  const [a, b] = points as [(typeof points)[0], (typeof points)[0]];
  const slope = (y0: number, y1: number): number => (b.T > a.T ? Math.max(0, (y1 - y0) / (b.T - a.T)) : 0);
  const prefillPerToken = slope(a.prefill, b.prefill);
  const stepPerToken = slope(a.step, b.step);
  const prefillAt = (T: number): number => Math.max(0, a.prefill + prefillPerToken * (T - a.T));
  const stepAt = (ctx: number): number => Math.max(0, a.step + stepPerToken * (ctx - a.T - 1));
  let seconds = 0;
  const timed = `timed on 2 requests (${a.T} and ${b.T} prompt tokens: decode steps of ${(1000 * a.step).toFixed(1)} and ${(1000 * b.step).toFixed(1)} ms)`;
  if (llm.recipe.shape === 'batched') {
    // Many requests per step: the prefills, then as many decode steps as the longest request
    // needs, or as the slots allow; each step costs one request's step at the mean context
    // (a lower bound where the device, not the host, sets a step's time).
    let outputs = 0, longest = 0, context = 0;
    for (const r of reqs) {
      seconds += prefillAt(r.promptIds.length);
      outputs += r.params.maxTokens - 1;
      longest = Math.max(longest, r.params.maxTokens - 1);
      context += r.promptIds.length + r.params.maxTokens / 2;
    }
    const steps = Math.max(longest, Math.ceil(outputs / llm.options.maxNumSeqs));
    seconds += steps * stepAt(context / reqs.length);
    return { seconds, basis: `${timed}, ${steps} decode steps of ${Math.min(reqs.length, llm.options.maxNumSeqs)} requests at most` };
  }
  for (const r of reqs) {
    const T = r.promptIds.length, n = r.params.maxTokens;
    // Decode steps j = 1 .. n-1 attend over T + j tokens: their mean context is T + n / 2.
    seconds += prefillAt(T) + (n - 1) * stepAt(T + n / 2);
  }
  return { seconds, basis: `${timed}, summed over the ${reqs.length} requests one at a time` };
}

export interface RecordInfo {
  lesson: number;
  /** The recipe's name. */
  recipe: string;
  device: Device;
  model: BenchRecord['model'];
  /** Extra settings (the model's dtype, batch limits...), merged over the harness's own. */
  settings?: Record<string, unknown>;
  /** Overrides the record's workload name (default: the run's workload name). */
  workload?: string;
  roofline?: Roofline;
  /** Defaults: hardwareInfo(device), now, currentCommit(). */
  hardware?: HardwareInfo;
  date?: string;
  commit?: string;
  /** Every run's rate when the workload was repeated (the result is then the median run). */
  repeats?: RepeatsSummary;
}

/** The record's KV figures: the six numbers of the run's stats, whatever else a store's stats() returns. */
function kvSettings(kv: NonNullable<GenerateStats['kvCache']>): Record<string, number> {
  const { reservedBytes, usedBytes, peakReservedBytes, peakUsedBytes, meanReservedBytes, meanUsedBytes } = kv;
  return { reservedBytes, usedBytes, peakReservedBytes, peakUsedBytes, meanReservedBytes, meanUsedBytes };
}

/** The BenchRecord of a run. A run that generated nothing has no rate to record: that is an error. */
export function toBenchRecord(result: BenchRunResult, info: RecordInfo): BenchRecord {
  if (result.outputTokens === 0)
    throw new Error(`toBenchRecord: the ${result.workload.name} run generated no tokens (time budget ${result.timeBudgetS ?? 'none'} s): nothing to record`);
  const { workload: w, partial, timeBudgetS, warmup, stats, ...results } = result;
  return {
    schema: 1,
    kind: 'bench',
    lesson: info.lesson,
    date: info.date ?? new Date().toISOString(),
    commit: info.commit ?? currentCommit(),
    hardware: info.hardware ?? hardwareInfo(info.device),
    settings: {
      device: info.device,
      workload: w.name,
      workloadDescription: w.description,
      requests: w.requests.length,
      ...(w.subset ? { subset: w.subset } : {}),
      ...(w.shard ? { shard: { ...w.shard, cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES ?? null } } : {}),
      timeBudgetS: timeBudgetS ?? null,
      warmup: warmup ?? false,
      timing: 'host clock, wall time of one generate() over every request, device synchronized at the end',
      ...(stats.kvCache ? { kvCache: kvSettings(stats.kvCache) } : {}),
      ...info.settings,
    },
    recipe: info.recipe,
    workload: info.workload ?? w.name,
    model: info.model,
    partial,
    results,
    ...(info.repeats ? { repeats: info.repeats } : {}),
    ...(info.roofline ? { roofline: { ...info.roofline } } : {}),
  };
}

/** What a record says about the LLM's model: the folder's name, dtype, parameter count, random weights or not. */
export function modelInfo(llm: LLM): BenchRecord['model'] {
  return { name: path.basename(llm.modelDir), dtype: llm.dtype, params: paramCount(llm.cfg), randomWeights: llm.randomWeights !== undefined };
}

export interface RecordQuery {
  kind: 'bench' | 'environment';
  lesson?: number;
  /** hardware.card, exactly. */
  card?: string;
  /** Bench records: the workload name ("course", "throughput", "course-8of32"...). */
  workload?: string;
  /** Bench records: model.name. */
  model?: string;
  /** Bench records: only runs with these engine options, as far as each record's engine uses them (limitsTag); undefined: any. */
  engine?: Partial<EngineOptions>;
  /** Bench records: prefer the newest complete run over a newer partial one (default false: the newest, whatever it is). */
  preferComplete?: boolean;
  /** Environment records: skip --quick runs when a full one exists (default true). */
  preferFull?: boolean;
  /** Default: resultsDir(). */
  dir?: string;
}

/** The newest record (by its date) that matches, or undefined. */
export function findLatestRecord(q: RecordQuery & { kind: 'bench' }): LoadedRecord<BenchRecord> | undefined;
export function findLatestRecord(q: RecordQuery & { kind: 'environment' }): LoadedRecord<EnvironmentRecord> | undefined;
export function findLatestRecord(q: RecordQuery): LoadedRecord<AnyRecord> | undefined {
  let found = loadRecords(q.dir ?? resultsDir()).records.filter(({ record: r }) => {
    if (r.kind !== q.kind) return false;
    if (q.lesson !== undefined && r.lesson !== q.lesson) return false;
    if (q.card !== undefined && r.hardware.card !== q.card) return false;
    if (r.kind === 'bench') {
      if (q.workload !== undefined && r.workload !== q.workload) return false;
      if (q.model !== undefined && r.model?.name !== q.model) return false;
      if (q.engine !== undefined && recordLimitsTag(r) !== limitsTag(q.engine, recordEngineShape(r))) return false;
    }
    return true;
  });
  if (q.kind === 'bench' && q.preferComplete && found.some((f) => f.record.kind === 'bench' && !f.record.partial))
    found = found.filter((f) => f.record.kind === 'bench' && !f.record.partial);
  if (q.kind === 'environment' && (q.preferFull ?? true) && found.some((f) => f.record.settings.quick !== true)) found = found.filter((f) => f.record.settings.quick !== true);
  found.sort((a, b) => Date.parse(a.record.date) - Date.parse(b.record.date) || a.file.localeCompare(b.file));
  return found[found.length - 1];
}

/** The card's measured rates from its latest lesson-00 record, or undefined where it has none (the CPU, a new card). */
export function cardRates(card: string, dir?: string): CardRates | undefined {
  const env = findLatestRecord({ kind: 'environment', lesson: 0, card, ...(dir ? { dir } : {}) });
  return env ? ratesFromEnvironment(env.record, env.file) : undefined;
}

/** The roofline of a model's workload on a card for an engine of the given shape, if the card has a lesson-00 record. */
export function rooflineFor(cfg: Qwen3Config, workload: Workload, opts: { shape: EngineShape; card: string; dir?: string; gpus?: number }): Roofline | undefined {
  const rates = cardRates(opts.card, opts.dir);
  if (!rates) return undefined;
  // N cards read N times the bytes and multiply N times the FLOPs per second (the collectives cost nothing here: an upper bound).
  const n = opts.gpus ?? 1;
  const scaled = n > 1 ? { ...rates, bandwidthGBps: n * rates.bandwidthGBps, gemmTflops: n * rates.gemmTflops, source: `${rates.source ?? 'lesson 00'} x ${n} GPUs` } : rates;
  return workloadRoofline(cfg, workload, scaled, opts.shape);
}


/**
 * Not switches: bookkeeping (the commit), where things are (the cache, the results, the model folder, a
 * browser for the chart) and test-only flags. Every other AIOS_* variable chooses a kernel, a path or a
 * limit of the engine.
 */
const NOT_SWITCHES = new Set(['AIOS_COMMIT', 'AIOS_CACHE', 'AIOS_RESULTS_DIR', 'AIOS_MODEL', 'AIOS_CHROMIUM', 'AIOS_BIG_TESTS', 'AIOS_EMU_TESTS', 'AIOS_FLASH_TEST_DEVICE', 'AIOS_CASCADE_TEST_DEVICE', 'AIOS_FLASH_CHECK_LOG', 'AIOS_LOAD_CLIENT']);

/** The AIOS_* environment switches of this process (kernel, path and limit choices), for a record's settings; none: nothing. */
export function engineEnvironment(env: NodeJS.ProcessEnv = process.env): { env?: Record<string, string> } {
  const set = Object.entries(env).filter(([k, v]) => k.startsWith('AIOS_') && !NOT_SWITCHES.has(k) && v !== undefined).sort(([a], [b]) => a.localeCompare(b));
  return set.length > 0 ? { env: Object.fromEntries(set) as Record<string, string> } : {};
}

/**
 * Everything a record needs from the LLM (model, device, recipe, roofline from the card's
 * lesson-00 record), then toBenchRecord.
 */
export function benchRecordFor(llm: LLM, result: BenchRunResult, extra: Partial<RecordInfo> = {}): BenchRecord {
  const lesson = extra.lesson ?? llm.recipe.lesson;
  const hardware = extra.hardware ?? hardwareInfo(llm.device);
  const gpus = llm.device === 'cpu' ? 0 : llm.options.tensorParallelSize;
  const roofline = extra.roofline ?? rooflineFor(llm.cfg, result.workload, { shape: llm.recipe.shape, card: hardware.card, gpus });
  const record = toBenchRecord(result, {
    ...extra,
    lesson,
    recipe: extra.recipe ?? llm.recipe.name,
    device: extra.device ?? llm.device,
    model: extra.model ?? modelInfo(llm),
    hardware,
    settings: { dtype: llm.dtype, engineShape: llm.recipe.shape, engine: { ...llm.options }, ...engineEnvironment(), ...extra.settings },
    ...(roofline ? { roofline } : {}),
  });
  return { ...record, gpus };
}

/** "lesson 4 on this card: 96.1 tok/s; this run: 812.3 tok/s (8.45x)", or a line saying there is nothing to compare with. */
export function compareWithPrevious(prev: LoadedRecord<BenchRecord> | undefined, current: BenchRunResult, prevLesson: number): string {
  const now = `this run: ${current.outputTokPerS.toFixed(1)} tok/s${current.partial ? ' (partial)' : ''}`;
  if (!prev) return `lesson ${prevLesson} has no ${current.workload.name} record on this card yet; ${now}`;
  const p = prev.record.results.outputTokPerS;
  return `lesson ${prevLesson} on this card: ${p.toFixed(1)} tok/s${prev.record.partial ? ' (partial)' : ''}; ${now} (${(current.outputTokPerS / p).toFixed(2)}x)`;
}
