// Results records: one JSON file per measured run under bench-results/, with
// the card, the commit, the settings and the date, so every number in a README
// or on the chart can be traced to the run that produced it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { type Device, deviceIndex, native } from '../backend.ts';
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions, type EngineShape, type PrefixCacheStats } from '../engine/types.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEFAULT_RESULTS_DIR = path.join(REPO_ROOT, 'bench-results');
/** AIOS_RESULTS_DIR as it was when this module loaded, else bench-results/. */
export const RESULTS_DIR = process.env.AIOS_RESULTS_DIR ?? DEFAULT_RESULTS_DIR;

/** The results folder: AIOS_RESULTS_DIR (read now) or bench-results/. */
export function resultsDir(): string {
  return process.env.AIOS_RESULTS_DIR ?? RESULTS_DIR;
}

export interface HardwareInfo {
  backend: 'cpu' | 'cuda';
  /** The GPU's name, or the CPU model on the CPU backend. */
  card: string;
  gpuCount: number;
  driverVersion?: string;
  cudaRuntime?: string;
  computeCapability?: string;
  smCount?: number;
  memoryBytes?: number;
  cpuCores: number;
}

export interface RecordBase {
  schema: 1;
  kind: string;
  lesson: number;
  date: string;
  commit: string;
  hardware: HardwareInfo;
  settings: Record<string, unknown>;
}

function cudaVersion(v: number | undefined): string | undefined {
  return v ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : undefined;
}

export function hardwareInfo(device: Device): HardwareInfo {
  const info = native.backendInfo();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  if (device === 'cpu') return { backend: 'cpu', card: cpu.trim(), gpuCount: info.deviceCount, cpuCores: os.cpus().length };
  const d = native.deviceInfo(deviceIndex(device));
  return {
    backend: 'cuda',
    card: d.name,
    gpuCount: info.deviceCount,
    driverVersion: cudaVersion(info.driverVersion),
    cudaRuntime: cudaVersion(info.runtimeVersion),
    computeCapability: d.computeCapability,
    smCount: d.smCount,
    memoryBytes: d.totalMemory,
    cpuCores: os.cpus().length,
  };
}

/** The commit being measured: AIOS_COMMIT (set where .git is absent, as on the GPU host) or git's HEAD, "+dirty" if changed. */
export function currentCommit(): string {
  if (process.env.AIOS_COMMIT) return process.env.AIOS_COMMIT;
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/** Writes a record as bench-results/<date>_lesson<NN>_<kind>_<card>.json (or into `dir`) and returns its path. */
export function writeRecord<R extends RecordBase>(record: R, dir: string = resultsDir()): string {
  mkdirSync(dir, { recursive: true });
  const stamp = record.date.replace(/[:.]/g, '-');
  const name = `${stamp}_lesson${String(record.lesson).padStart(2, '0')}_${slug(record.kind)}_${slug(record.hardware.card)}.json`;
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  return file;
}

/** What a timed run measured: the numbers a bench record keeps (the harness's BenchRunResult carries them too). */
export interface RunResults {
  requests: number;
  finishedRequests: number;
  /** Prompt tokens of the requests that started (all of them in a complete run). */
  promptTokens: number;
  /** Tokens actually generated. */
  outputTokens: number;
  /** Wall time of the timed run (host clock, device synchronized at the end). */
  seconds: number;
  /** Output tokens over wall time: the headline number. */
  outputTokPerS: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
  peakMemoryBytes: number;
  /** The token counts and seconds behind the prefill and decode rates, so shards can be added up. */
  phases: { prefillTokens: number; prefillSeconds: number; decodeTokens: number; decodeSeconds: number };
  /**
   * The engine's steps (records from 2026-11-30 on): how many, how many were preempted, and
   * where the time went: host seconds queueing the steps' work and then waiting for the device.
   */
  steps?: { count: number; mixedTokens: number; mixedSeconds: number; enqueueSeconds: number; syncSeconds: number; preemptions: number };
  /**
   * Time to first token over the requests that produced one (records from 2026-12-01 on):
   * milliseconds from the start of the timed generate() (every request is queued then) to the
   * request's first token; percentiles interpolated linearly between ranks, as numpy's default.
   */
  firstTokenMs?: { p50: number; p99: number; mean: number; max: number; requests: number };
  /** Engines with a prefix cache (lesson 13 on): what the run's admissions found cached (phases.prefillTokens is what ran). */
  prefixCache?: PrefixCacheStats;
}

/** The same workload run several times: what a record keeps of all of them. */
export interface RepeatsSummary {
  count: number;
  /** Output tok/s of each run, in the order they ran. */
  outputTokPerS: number[];
  /** Wall seconds of each run. */
  seconds: number[];
  /** The median of outputTokPerS (for an even count, the mean of the two middle runs). */
  medianOutputTokPerS: number;
  minOutputTokPerS: number;
  maxOutputTokPerS: number;
  /** (max - min) / median, in percent: how far apart the runs were. */
  spreadPct: number;
  /** Which run (0-based, in run order) the record's results are: the median one (for an even count, the slower middle one). */
  resultsRun: number;
}

/** A lesson's run of a workload (written by the harness; `pnpm bench`, `pnpm lesson N`). */
export interface BenchRecord extends RecordBase {
  kind: 'bench';
  /** The lesson's recipe name, e.g. "paged-kv-cache". */
  recipe: string;
  /** "course" or "throughput" (docs/benchmarking.md). */
  workload: string;
  model: { name: string; dtype: string; params: number; randomWeights: boolean };
  /** True when the time budget stopped the run early; results cover what finished. */
  partial: boolean;
  /** `phases` is absent from records written before 2026-11-27. */
  results: Omit<RunResults, 'phases'> & Partial<Pick<RunResults, 'phases'>>;
  /** Present when the workload ran more than once: every run's rate; `results` is then the median run. */
  repeats?: RepeatsSummary;
  /** GPUs the run used (its tensor-parallel ranks; 0 on the CPU). Absent in records from before lesson 14: 1 on a GPU. */
  gpus?: number;
  /** The fastest this workload could run on this card (bytes and FLOPs counted), if computed. */
  roofline?: { outputTokPerS: number; /** The minimum seconds (records from 2026-11-27 on). */ seconds?: number; basis: string };
}

/** Lesson 00's measurements of a card (its demo writes a more precise type of it). */
export type EnvironmentRecord = RecordBase & { kind: 'environment'; results: Record<string, unknown> };

/** One version of a kernel (or a peer library's) on one shape: device time per call, CUDA events, median of repeats. */
export interface KernelTiming {
  /** "v2", "lesson08" (the CUDA pagedAttention lessons 07-08 use), "torch-sdpa-flash", ... */
  version: string;
  medianMs: number;
  minMs: number;
  maxMs: number;
  repeats: number;
  /** Back-to-back calls between one pair of events (a repeat's time is divided by it). */
  callsPerRepeat: number;
  tflops?: number;
  /** Bytes of K/V read (the visible keys' K and V rows of every KV head) per second, 1e9. */
  gbPerS?: number;
  /** ||out - lesson 08's out|| / ||lesson 08's out|| on this shape's inputs (NaN anywhere: null). */
  relErrVsLesson08?: number | null;
  /** Why it has no numbers (unsupported, failed). */
  error?: string;
  /** Anything else the measurer says (how torch was called, the split plan). */
  note?: string;
}

/** One benchmark shape of a kernel record: what was run and what it costs at least. */
export interface KernelShape {
  name: string;
  phase: 'prefill' | 'decode';
  model: string;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  seqs: number;
  qLen: number;
  context: number;
  /** Causal FLOPs: 4 x sum over queries of visible keys x headDim x qHeads. */
  flops: number;
  /** K/V bytes the visible keys occupy (what a decode must read at least). */
  kvBytes: number;
}

export interface KernelShapeResult extends KernelShape {
  versions: KernelTiming[];
  peer?: KernelTiming;
}

/** A kernel benchmark (`pnpm bench:kernels`): per-shape, per-version device times of one card, one call. */
export interface KernelRecord extends RecordBase {
  kind: 'kernel';
  /** The kernel family, e.g. "flash-attention". */
  family: string;
  results: {
    shapes: KernelShapeResult[];
    /** The card's ceilings measured in the same call, and lesson 00's record of it if there is one. */
    ceilings: { copyGbPerS?: number; lesson00CopyGbPerS?: number; lesson00Record?: string; peerCopyGbPerS?: number };
    peer?: { library: string; version?: string; note?: string };
  };
}

/**
 * Another engine (Hugging Face transformers, vLLM...) run on the same model and
 * workload on the same card, in the same call as ours where possible: drawn on
 * the chart as a reference line, never mixed into a lesson's series. `lesson` is
 * the lesson whose bar it is measured against (issue 11: lesson 11).
 */
export interface PeerRecord extends RecordBase {
  kind: 'peer';
  /** Who ran: the library, its version, how it was called (e.g. "generate_batch"). */
  peer: { library: string; version?: string; mode: string; note?: string };
  workload: string;
  model: { name: string; dtype: string; params?: number; randomWeights: boolean };
  partial: boolean;
  results: Pick<RunResults, 'requests' | 'finishedRequests' | 'promptTokens' | 'outputTokens' | 'seconds' | 'outputTokPerS'>;
}

/** Mean, median and 99th percentile of a latency, in ms. */
export interface LatencySummary {
  mean: number;
  p50: number;
  p99: number;
}

/** One request rate of a serving benchmark (`pnpm bench serve`), measured at the client. */
export interface ServeRateResult {
  /** Requests per second (Poisson arrivals); null: all sent at once. */
  rate: number | null;
  requests: number;
  seconds: number;
  outputTokens: number;
  outputTokPerS: number;
  requestsPerS: number;
  /** Time to first token, time per output token after the first, the gaps between tokens, end to end. */
  ttftMs: LatencySummary;
  tpotMs: LatencySummary;
  itlMs: LatencySummary;
  e2eMs: LatencySummary;
  /** The server's engine loop during this rate: steps, mean ms inside a step and around it (sending deltas, serving HTTP). */
  /**
   * The engine loop per step: inside the step (queueing to sampled tokens), around it (between
   * steps) and, inside the step, handing out the previous step's deltas (records from 2026-11-30T19:45 on).
   */
  loop: { steps: number; stepMsMean: number; overheadMsMean: number; dispatchMsMean?: number };
}

/** Lesson 15's serving benchmark: the same engine offline and behind the HTTP server at several rates. */
export interface ServeRecord extends RecordBase {
  kind: 'serve';
  recipe: string;
  /** The lesson whose engine the server drives. */
  servedLesson: number;
  workload: string;
  model: { name: string; dtype: string; params: number; randomWeights: boolean };
  results: { offline: { outputTokPerS: number; seconds: number; outputTokens: number }; rates: ServeRateResult[] };
}

export type AnyRecord = BenchRecord | EnvironmentRecord | KernelRecord | PeerRecord | ServeRecord;

export interface LoadedRecord<R extends AnyRecord = AnyRecord> {
  /** The file name inside the results folder (what a reader greps for). */
  file: string;
  record: R;
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface LoadResult {
  records: LoadedRecord[];
  skipped: SkippedFile[];
}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function finitePositive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

/** Why a parsed JSON value is not a usable record, or undefined when it is one. */
export function recordProblem(json: unknown): string | undefined {
  if (!isObj(json)) return 'not a JSON object';
  if (json.schema !== 1) return `schema is ${JSON.stringify(json.schema)}, expected 1`;
  if (typeof json.kind !== 'string' || !json.kind) return 'kind is missing';
  if (typeof json.lesson !== 'number' || !Number.isInteger(json.lesson) || json.lesson < 0) return `lesson is ${JSON.stringify(json.lesson)}, expected a lesson number`;
  if (typeof json.date !== 'string' || Number.isNaN(Date.parse(json.date))) return `date is ${JSON.stringify(json.date)}, expected an ISO date`;
  if (typeof json.commit !== 'string') return 'commit is missing';
  if (!isObj(json.hardware) || typeof json.hardware.card !== 'string' || !json.hardware.card) return 'hardware.card is missing';
  if (!isObj(json.results)) return 'results is missing';
  if (json.kind === 'bench') {
    if (typeof json.workload !== 'string' || !json.workload) return 'bench record without a workload';
    if (typeof json.partial !== 'boolean') return 'bench record without partial: true|false';
    if (!isObj(json.model) || typeof json.model.name !== 'string') return 'bench record without model.name';
    if (!finitePositive(json.results.outputTokPerS)) return `results.outputTokPerS is ${JSON.stringify(json.results.outputTokPerS)}, expected a positive number`;
    if (json.repeats !== undefined) {
      const rp = json.repeats;
      if (!isObj(rp) || !Number.isInteger(rp.count) || !Array.isArray(rp.outputTokPerS) || rp.outputTokPerS.length !== rp.count || !rp.outputTokPerS.every(finitePositive))
        return 'repeats must have count and one positive outputTokPerS per run';
      if (!finitePositive(rp.medianOutputTokPerS) || !finitePositive(rp.minOutputTokPerS) || !finitePositive(rp.maxOutputTokPerS)) return 'repeats needs medianOutputTokPerS, minOutputTokPerS and maxOutputTokPerS';
    }
    if (json.roofline !== undefined && (!isObj(json.roofline) || !finitePositive(json.roofline.outputTokPerS)))
      return 'roofline.outputTokPerS must be a positive number when roofline is present';
  }
  if (json.kind === 'peer') {
    if (!isObj(json.peer) || typeof json.peer.library !== 'string' || !json.peer.library || typeof json.peer.mode !== 'string' || !json.peer.mode)
      return 'peer record without peer.library and peer.mode';
    if (typeof json.workload !== 'string' || !json.workload) return 'peer record without a workload';
    if (!isObj(json.model) || typeof json.model.name !== 'string') return 'peer record without model.name';
    if (typeof json.partial !== 'boolean') return 'peer record without partial: true|false';
    if (!finitePositive(json.results.outputTokPerS)) return `results.outputTokPerS is ${JSON.stringify(json.results.outputTokPerS)}, expected a positive number`;
  }
  if (json.kind === 'serve') {
    if (typeof json.workload !== 'string' || !json.workload) return 'serve record without a workload';
    if (!isObj(json.model) || typeof json.model.name !== 'string') return 'serve record without model.name';
    const r = json.results;
    if (!isObj(r.offline) || !finitePositive(r.offline.outputTokPerS)) return 'serve record without results.offline.outputTokPerS';
    if (!Array.isArray(r.rates) || r.rates.length === 0) return 'serve record without results.rates';
    for (const [i, x] of r.rates.entries()) {
      if (!isObj(x) || !(x.rate === null || finitePositive(x.rate))) return `results.rates[${i}].rate must be a positive number or null (unbounded)`;
      if (!finitePositive(x.outputTokPerS)) return `results.rates[${i}].outputTokPerS must be a positive number`;
      for (const k of ['ttftMs', 'tpotMs', 'itlMs'])
        if (!isObj(x[k]) || typeof (x[k] as Obj).p50 !== 'number' || typeof (x[k] as Obj).p99 !== 'number') return `results.rates[${i}].${k} needs p50 and p99`;
    }
  }
  if (json.kind === 'kernel') {
    if (typeof json.family !== 'string' || !json.family) return 'kernel record without a family';
    if (!Array.isArray(json.results.shapes)) return 'kernel record without results.shapes';
  }
  return undefined;
}

/** Every record in `dir` (files ending in .json), sorted by file name; files that are not valid records are listed in `skipped`. */
export function loadRecords(dir: string): LoadResult {
  const out: LoadResult = { records: [], skipped: [] };
  if (!existsSync(dir)) return out;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
    } catch (e) {
      out.skipped.push({ file, reason: `invalid JSON (${(e as Error).message})` });
      continue;
    }
    const problem = recordProblem(json);
    if (problem) out.skipped.push({ file, reason: problem });
    else out.records.push({ file, record: json as AnyRecord });
  }
  return out;
}

/**
 * How the engine of a record served its requests: settings.engineShape, which
 * records carry since lesson 07; the records written before it (lessons 03-06)
 * all come from engines that serve one request at a time.
 */
export function recordEngineShape(record: BenchRecord): EngineShape {
  const s = record.settings.engineShape;
  return s === 'batched' || s === 'sequential' ? s : 'sequential';
}

/**
 * The engine options a record ran with (its settings.engine) that its engine uses, where they
 * are not the defaults: "64 seqs/step", "4096 tokens/step", "16-token blocks", "90% of memory",
 * "1.00 GiB KV". An engine of one request at a time (lessons 03-06) has no step limits to tag.
 * Empty for the defaults and for records from before the options were recorded. Runs with
 * different options are different experiments: the chart draws them as separate lines and a
 * lesson compares itself only with a run of the same options.
 */
export function limitsTag(engine: unknown, shape: EngineShape = 'batched'): string {
  if (!engine || typeof engine !== 'object') return '';
  const e: Partial<Record<keyof EngineOptions, unknown>> = engine;
  const d = DEFAULT_ENGINE_OPTIONS;
  const parts: string[] = [];
  const differs = (k: keyof EngineOptions) => typeof e[k] === 'number' && e[k] !== d[k];
  if (shape === 'batched') {
    if (differs('maxNumSeqs')) parts.push(`${e.maxNumSeqs} seqs/step`);
    if (differs('maxNumBatchedTokens')) parts.push(`${e.maxNumBatchedTokens} tokens/step`);
  }
  if (differs('blockSize')) parts.push(`${e.blockSize}-token blocks`);
  if (differs('gpuMemoryUtilization')) parts.push(`${Math.round(100 * (e.gpuMemoryUtilization as number))}% of memory`);
  if (differs('kvCacheBytes')) parts.push(`${((e.kvCacheBytes as number) / 2 ** 30).toFixed(2)} GiB KV`);
  if (differs('tensorParallelSize')) parts.push(`${e.tensorParallelSize} GPUs (tensor parallel)`);
  return parts.join(', ');
}

/** The options tag of a bench record, for the engine that wrote it. */
export function recordLimitsTag(record: BenchRecord): string {
  return limitsTag(record.settings.engine, recordEngineShape(record));
}
