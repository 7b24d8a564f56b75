// From results records to what the chart draws: plain functions, no DOM, no
// Chart.js, so every rule (which run counts, what a multiplier is measured
// against, where the roofline comes from) is unit-tested on the CPU.
//
//   loadRecords(dir)         (records.ts) every *.json under bench-results/, checked; bad files are reported, not dropped silently
//   selectLatest(runs)       one run per (card, workload, model, lesson): the latest complete one, else the latest partial one
//   buildTokSeries(runs)     the tok/s view: one series per card + workload (+ model when ambiguous), aligned on lessons,
//                            each point with its multiplier over the series' previous lesson, partial runs marked,
//                            the series' roofline as a flat line, and other engines' runs (peer records) as lines of their own
//   environmentEntries(...)  the per-op view: lesson 00's copy bandwidth, GEMM rate, op overhead and PyTorch baseline
//   kernelEntries(...)       the per-kernel view: per shape, each kernel version's time and rate, the peer library's
//                            (PyTorch SDPA) and the copy bandwidth measured in the same call, as the record has them
import {
  type AnyRecord,
  type BenchRecord,
  type KernelRecord,
  type KernelShape,
  type KernelTiming,
  type LoadResult,
  type LoadedRecord,
  type Obj,
  type PeerRecord,
  type ServeRecord,
  type SkippedFile,
  isObj,
  recordLimitsTag,
} from '../bench/records.ts';
import { type Freshness, FreshnessChecker } from '../bench/staleness.ts';

export type { Freshness } from '../bench/staleness.ts';

/** Whether a record is still true of the code (staleness.ts); absent when not checked. */
export type FreshnessOf = (record: AnyRecord) => Freshness | undefined;

/** The repository's git history decides (the default of pnpm chart and pnpm readme). */
export function gitFreshness(): FreshnessOf {
  const checker = new FreshnessChecker();
  return (record) => checker.check(record);
}

export { type LoadResult, type LoadedRecord, type SkippedFile, loadRecords, recordProblem } from '../bench/records.ts';

export function benchRuns(records: readonly LoadedRecord[]): LoadedRecord<BenchRecord>[] {
  return records.filter((r): r is LoadedRecord<BenchRecord> => r.record.kind === 'bench');
}

/** Runs in the same series measure the same thing: the same workload of the same model on the same card. */
export function seriesKey(r: BenchRecord): string {
  return [r.hardware.card, r.workload, r.model.name, recordLimitsTag(r)].join('\u0000');
}

function newer(a: LoadedRecord, b: LoadedRecord): boolean {
  const da = Date.parse(a.record.date), db = Date.parse(b.record.date);
  return da !== db ? da > db : a.file > b.file;
}

/** Whether `run` stands for its key rather than `cur`: a complete run over a partial one, then the newer. */
function betterRun(run: LoadedRecord<BenchRecord | PeerRecord>, cur: LoadedRecord<BenchRecord | PeerRecord> | undefined): boolean {
  return !cur || (cur.record.partial && !run.record.partial) || (cur.record.partial === run.record.partial && newer(run, cur));
}

/**
 * One run per (series, lesson): the latest complete run; where every run of
 * that lesson stopped early, the latest partial one (the chart marks it).
 * A partial rerun never hides a complete measurement.
 */
export function selectLatest(runs: readonly LoadedRecord<BenchRecord>[]): LoadedRecord<BenchRecord>[] {
  const best = new Map<string, LoadedRecord<BenchRecord>>();
  for (const run of runs) {
    const key = `${seriesKey(run.record)}\u0000${run.record.lesson}`;
    if (betterRun(run, best.get(key))) best.set(key, run);
  }
  return [...best.values()].sort((a, b) => a.record.lesson - b.record.lesson || (seriesKey(a.record) < seriesKey(b.record) ? -1 : 1));
}

export interface TokPoint {
  lesson: number;
  tokPerS: number;
  partial: boolean;
  /** tok/s over the same series' previous recorded lesson; absent for the series' first lesson. */
  multiplier?: number;
  /** The lesson the multiplier is measured against. */
  prevLesson?: number;
  recipe: string;
  file: string;
  commit: string;
  date: string;
  /** Present when the record ran the workload more than once: tokPerS is then the median run's. */
  repeats?: { count: number; min: number; max: number; spreadPct: number };
  /** Time to first token of the record's run, where it has one (records from 2026-12-01 on). */
  firstTokenMs?: { p50: number; p99: number };
  freshness?: Freshness;
}

export interface TokSeries {
  key: string;
  label: string;
  card: string;
  workload: string;
  model: string;
  /** One slot per entry of TokView.lessons; null where this series has no run of that lesson. */
  points: (TokPoint | null)[];
  /** The workload's roofline on this card (from the latest selected run that carries one). */
  roofline?: { tokPerS: number; basis: string; file: string };
  /** Other engines on the same card, workload and model (the newest record of each library and mode): reference lines. */
  peers?: PeerLine[];
}

export interface PeerLine {
  /** "transformers 4.57 generate_batch". */
  label: string;
  tokPerS: number;
  partial: boolean;
  file: string;
  date: string;
  note?: string;
}

export interface TokView {
  /** The x axis: every lesson with at least one selected run, ascending. */
  lessons: number[];
  series: TokSeries[];
}

/** Peer records (kind "peer") among all records. */
function peerRuns(records: readonly LoadedRecord[]): LoadedRecord<PeerRecord>[] {
  return records.filter((r): r is LoadedRecord<PeerRecord> => r.record.kind === 'peer');
}

/** The newest peer record of each library + mode on this card, workload and model, as lines. */
function peerLines(peers: readonly LoadedRecord<PeerRecord>[], card: string, workload: string, model: string): PeerLine[] {
  const newest = new Map<string, LoadedRecord<PeerRecord>>();
  for (const p of peers) {
    const r = p.record;
    if (r.hardware.card !== card || r.workload !== workload || r.model.name !== model) continue;
    const key = `${r.peer.library}\u0000${r.peer.mode}`;
    if (betterRun(p, newest.get(key))) newest.set(key, p); // as selectLatest chooses
  }
  return [...newest.values()]
    .map(({ file, record: r }) => ({
      label: `${r.peer.library}${r.peer.version ? ` ${r.peer.version}` : ''} ${r.peer.mode}`,
      tokPerS: r.results.outputTokPerS,
      partial: r.partial,
      file,
      date: r.date,
      ...(r.peer.note ? { note: r.peer.note } : {}),
    }))
    .sort((a, b) => b.tokPerS - a.tokPerS);
}

/** The tok/s view from all bench runs (selectLatest is applied here), with the peers' lines of each series. */
export function buildTokSeries(runs: readonly LoadedRecord<BenchRecord>[], freshness?: FreshnessOf, peers: readonly LoadedRecord<PeerRecord>[] = []): TokView {
  const selected = selectLatest(runs);
  const lessons = [...new Set(selected.map((r) => r.record.lesson))].sort((a, b) => a - b);
  const groups = new Map<string, LoadedRecord<BenchRecord>[]>();
  for (const run of selected) {
    const key = seriesKey(run.record);
    const g = groups.get(key);
    if (g) g.push(run);
    else groups.set(key, [run]);
  }
  // The model goes into the label only where one card and workload carry several models.
  const modelsPer = new Map<string, Set<string>>();
  for (const run of selected) {
    const cw = `${run.record.hardware.card}\u0000${run.record.workload}`;
    (modelsPer.get(cw) ?? modelsPer.set(cw, new Set()).get(cw)!).add(run.record.model.name);
  }
  const series: TokSeries[] = [];
  for (const [key, group] of [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const first = group[0]!.record;
    const ambiguous = (modelsPer.get(`${first.hardware.card}\u0000${first.workload}`)?.size ?? 0) > 1;
    const byLesson = new Map(group.map((r) => [r.record.lesson, r]));
    let prev: TokPoint | undefined;
    const points = lessons.map((lesson): TokPoint | null => {
      const run = byLesson.get(lesson);
      if (!run) return null;
      const r = run.record;
      const point: TokPoint = {
        lesson,
        tokPerS: r.results.outputTokPerS,
        partial: r.partial,
        recipe: r.recipe,
        file: run.file,
        commit: r.commit,
        date: r.date,
      };
      if (r.repeats && r.repeats.count > 1)
        point.repeats = { count: r.repeats.count, min: r.repeats.minOutputTokPerS, max: r.repeats.maxOutputTokPerS, spreadPct: r.repeats.spreadPct };
      const ttft = r.results.firstTokenMs;
      if (ttft && Number.isFinite(ttft.p50) && Number.isFinite(ttft.p99)) point.firstTokenMs = { p50: ttft.p50, p99: ttft.p99 };
      const f = freshness?.(r);
      if (f) point.freshness = f;
      if (prev) {
        point.multiplier = point.tokPerS / prev.tokPerS;
        point.prevLesson = prev.lesson;
      }
      prev = point;
      return point;
    });
    let roofline: TokSeries['roofline'];
    for (const run of [...group].sort((a, b) => (newer(a, b) ? -1 : 1))) {
      if (run.record.roofline) {
        roofline = { tokPerS: run.record.roofline.outputTokPerS, basis: run.record.roofline.basis, file: run.file };
        break;
      }
    }
    const lines = peerLines(peers, first.hardware.card, first.workload, first.model.name);
    series.push({
      key,
      label: `${first.hardware.card} · ${first.workload}${ambiguous ? ` · ${first.model.name}` : ''}${recordLimitsTag(first) ? ` · ${recordLimitsTag(first)}` : ''}`,
      card: first.hardware.card,
      workload: first.workload,
      model: first.model.name,
      points,
      ...(roofline ? { roofline } : {}),
      ...(lines.length ? { peers: lines } : {}),
    });
  }
  return { lessons, series };
}

// ------------------------------------------------------------ lesson 00: the environment

export interface EnvEntry {
  card: string;
  backend: string;
  file: string;
  commit: string;
  date: string;
  quick: boolean;
  copy: { gbPerS: number; bytes: number };
  gemm: { tflops: number; M: number; N: number; K: number; dtype: string };
  /** Microseconds per tiny op: through the facade and the raw binding (host), back to back on the stream, and a bare CUDA launch from C++ (host). */
  overhead: { facadeUs: number; bindingUs: number; deviceUs?: number; cudaLaunchUs?: number };
  baseline?: { torch: string; copyGbPerS: number; gemmTflops: number; addOverheadUs?: number };
  freshness?: Freshness;
}

function num(o: unknown, ...keys: string[]): number | undefined {
  let v: unknown = o;
  for (const k of keys) v = isObj(v) ? v[k] : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Lesson 00's numbers from one environment record, or a reason it lacks them. */
export function environmentEntry(loaded: LoadedRecord): EnvEntry | string {
  const r = loaded.record;
  const res = r.results as Obj;
  const copyGb = num(res, 'copy', 'gbPerS'), copyBytes = num(res, 'copy', 'bytes');
  const tflops = num(res, 'gemm', 'tflops');
  const facadeUs = num(res, 'overhead', 'facadeUs'), bindingUs = num(res, 'overhead', 'bindingUs');
  if (copyGb === undefined || copyBytes === undefined) return 'results.copy.gbPerS/bytes missing';
  if (tflops === undefined) return 'results.gemm.tflops missing';
  if (facadeUs === undefined || bindingUs === undefined) return 'results.overhead.facadeUs/bindingUs missing';
  const gemm = res.gemm as Obj;
  const entry: EnvEntry = {
    card: r.hardware.card,
    backend: r.hardware.backend,
    file: loaded.file,
    commit: r.commit,
    date: r.date,
    quick: r.settings.quick === true,
    copy: { gbPerS: copyGb, bytes: copyBytes },
    gemm: { tflops, M: num(gemm, 'M') ?? 0, N: num(gemm, 'N') ?? 0, K: num(gemm, 'K') ?? 0, dtype: String(gemm.dtype ?? '?') },
    overhead: { facadeUs, bindingUs },
  };
  const deviceUs = num(res, 'overhead', 'deviceUs');
  if (deviceUs !== undefined) entry.overhead.deviceUs = deviceUs;
  const cudaLaunchUs = num(res, 'overhead', 'cudaLaunchUs');
  if (cudaLaunchUs !== undefined) entry.overhead.cudaLaunchUs = cudaLaunchUs;
  const b = res.baseline;
  const bGemm = num(b, 'gemm', 'tflops'), bCopy = num(b, 'copy', 'gbPerS');
  if (isObj(b) && bGemm !== undefined && bCopy !== undefined) {
    entry.baseline = { torch: String(b.torch ?? 'PyTorch'), copyGbPerS: bCopy, gemmTflops: bGemm };
    const add = num(b, 'addOverheadUs');
    if (add !== undefined) entry.baseline.addOverheadUs = add;
  }
  return entry;
}

/** The latest environment record per card (a full run over a --quick one), sorted by card. */
export function environmentEntries(records: readonly LoadedRecord[], freshness?: FreshnessOf): { entries: EnvEntry[]; skipped: SkippedFile[] } {
  const skipped: SkippedFile[] = [];
  const best = new Map<string, { entry: EnvEntry; loaded: LoadedRecord }>();
  for (const loaded of records) {
    if (loaded.record.kind !== 'environment') continue;
    const entry = environmentEntry(loaded);
    if (typeof entry === 'string') {
      skipped.push({ file: loaded.file, reason: entry });
      continue;
    }
    const cur = best.get(entry.card);
    if (!cur || (cur.entry.quick && !entry.quick) || (cur.entry.quick === entry.quick && newer(loaded, cur.loaded))) best.set(entry.card, { entry, loaded });
  }
  const entries = [...best.values()]
    .map(({ entry, loaded }) => {
      const f = freshness?.(loaded.record);
      return f ? { ...entry, freshness: f } : entry;
    })
    .sort((a, b) => (a.card < b.card ? -1 : a.card > b.card ? 1 : 0));
  return { entries, skipped };
}

// ------------------------------------------------------------ kernel records (lesson 09 on)

/**
 * One kernel version (or the peer library) on one shape, as the chart reads it from a record:
 * the record's fields where present, and `rate`, the record's own tflops (prefill) or gbPerS
 * (decode), never recomputed, absent where the record has none.
 */
export type KernelTimingEntry = Pick<KernelTiming, 'version' | 'relErrVsLesson08' | 'error' | 'note'> &
  Partial<Pick<KernelTiming, 'medianMs' | 'minMs' | 'maxMs' | 'repeats' | 'callsPerRepeat'>> & { rate?: number };

export interface KernelShapeEntry extends KernelShape {
  /** In the record's order (lesson08, v1, v2, ...). */
  versions: KernelTimingEntry[];
  /** The peer library on the same inputs, same call; absent where the record has no peer for this shape. */
  peer?: KernelTimingEntry;
}

export interface KernelEntry {
  card: string;
  family: string;
  lesson: number;
  file: string;
  commit: string;
  date: string;
  quick: boolean;
  /** The run stopped early: settings.partial says how far it got. */
  partial?: string;
  dtype?: string;
  prefill: KernelShapeEntry[];
  decode: KernelShapeEntry[];
  /** Copy bandwidth (read + write) measured in the same call, and the other copy numbers the record quotes. */
  copy: { gbPerS?: number; peerGbPerS?: number; lesson00GbPerS?: number; lesson00Record?: string };
  peer?: { library: string; version?: string; note?: string };
  /** Shapes of the record this view could not read (and why): listed in the page's notes, not charted. */
  ignored?: string[];
  freshness?: Freshness;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v ? v : undefined;
}

function kernelTiming(t: unknown, phase: 'prefill' | 'decode'): KernelTimingEntry | undefined {
  if (!isObj(t) || typeof t.version !== 'string') return undefined;
  const e: KernelTimingEntry = { version: t.version };
  for (const k of ['medianMs', 'minMs', 'maxMs', 'repeats', 'callsPerRepeat'] as const) {
    const v = num(t, k);
    if (v !== undefined) e[k] = v;
  }
  const rate = num(t, phase === 'prefill' ? 'tflops' : 'gbPerS');
  if (rate !== undefined && rate > 0) e.rate = rate;
  if (typeof t.relErrVsLesson08 === 'number' || t.relErrVsLesson08 === null) e.relErrVsLesson08 = t.relErrVsLesson08;
  const error = str(t.error), note = str(t.note);
  if (error) e.error = error;
  if (note) e.note = note;
  return e;
}

/** The per-kernel numbers of one kernel record, or a reason it has none to chart. */
export function kernelEntry(loaded: LoadedRecord): KernelEntry | string {
  const r = loaded.record as KernelRecord;
  const res = r.results as unknown as Obj;
  if (!Array.isArray(res.shapes)) return 'results.shapes missing';
  const shapes: KernelShapeEntry[] = [];
  const ignored: string[] = [];
  for (const [i, s] of (res.shapes as unknown[]).entries()) {
    const label = isObj(s) && typeof s.name === 'string' ? `"${s.name}"` : `#${i}`;
    if (!isObj(s) || typeof s.name !== 'string' || (s.phase !== 'prefill' && s.phase !== 'decode') || !Array.isArray(s.versions)) {
      ignored.push(`shape ${label}: needs name, phase (prefill or decode) and versions`);
      continue;
    }
    const phase = s.phase;
    const ints = ['qHeads', 'kvHeads', 'headDim', 'seqs', 'qLen', 'context', 'flops', 'kvBytes'] as const;
    const n = Object.fromEntries(ints.map((k) => [k, num(s, k)])) as Record<(typeof ints)[number], number | undefined>;
    const missing = ints.filter((k) => n[k] === undefined);
    if (missing.length) {
      ignored.push(`shape ${label}: ${missing.join(', ')} missing`);
      continue;
    }
    const versions = (s.versions as unknown[]).map((t) => kernelTiming(t, phase)).filter((t): t is KernelTimingEntry => t !== undefined);
    const peer = kernelTiming(s.peer, phase);
    shapes.push({ name: s.name, phase, model: String(s.model ?? '?'), ...(n as Record<(typeof ints)[number], number>), versions, ...(peer ? { peer } : {}) });
  }
  if (!shapes.some((s) => s.versions.some((v) => v.rate !== undefined) || s.peer?.rate !== undefined)) return 'no shape with a measured rate (results.shapes[].versions[].tflops or gbPerS)';
  const ceilings = isObj(res.ceilings) ? res.ceilings : {};
  const copy: KernelEntry['copy'] = {};
  const cg = num(ceilings, 'copyGbPerS'), pg = num(ceilings, 'peerCopyGbPerS'), lg = num(ceilings, 'lesson00CopyGbPerS');
  if (cg !== undefined) copy.gbPerS = cg;
  if (pg !== undefined) copy.peerGbPerS = pg;
  if (lg !== undefined) copy.lesson00GbPerS = lg;
  const lr = str(ceilings.lesson00Record);
  if (lr) copy.lesson00Record = lr;
  const entry: KernelEntry = {
    card: r.hardware.card,
    family: String(r.family),
    lesson: r.lesson,
    file: loaded.file,
    commit: r.commit,
    date: r.date,
    quick: r.settings.quick === true,
    prefill: shapes.filter((s) => s.phase === 'prefill'),
    decode: shapes.filter((s) => s.phase === 'decode'),
    copy,
  };
  if (ignored.length) entry.ignored = ignored;
  const partial = str(r.settings.partial);
  if (partial) entry.partial = partial;
  const dtype = str(r.settings.dtype);
  if (dtype) entry.dtype = dtype;
  if (isObj(res.peer) && str(res.peer.library)) {
    entry.peer = { library: str(res.peer.library)! };
    const version = str(res.peer.version), note = str(res.peer.note);
    if (version) entry.peer.version = version;
    if (note) entry.peer.note = note;
  }
  return entry;
}

/**
 * Per card, family and phase (prefill, decode), the latest kernel record that measured it (a
 * complete run over one that stopped early, a full run over a --quick one, then the newest):
 * a later run of the prefill shapes alone does not hide the decode shapes of an earlier one.
 * Where one record wins both phases it is one entry; otherwise one entry per phase, each
 * naming its own record. Sorted by card and family.
 */
export function kernelEntries(records: readonly LoadedRecord[], freshness?: FreshnessOf): { entries: KernelEntry[]; skipped: SkippedFile[] } {
  const skipped: SkippedFile[] = [];
  const best = new Map<string, { entry: KernelEntry; loaded: LoadedRecord }>();
  const rank = (e: KernelEntry) => (e.partial ? 0 : 2) + (e.quick ? 0 : 1);
  for (const loaded of records) {
    if (loaded.record.kind !== 'kernel') continue;
    const entry = kernelEntry(loaded);
    if (typeof entry === 'string') {
      skipped.push({ file: loaded.file, reason: entry });
      continue;
    }
    for (const phase of ['prefill', 'decode'] as const) {
      if (entry[phase].length === 0) continue;
      const key = `${entry.card}\u0000${entry.family}\u0000${phase}`;
      const cur = best.get(key);
      if (!cur || rank(entry) > rank(cur.entry) || (rank(entry) === rank(cur.entry) && newer(loaded, cur.loaded))) best.set(key, { entry, loaded });
    }
  }
  const byFamily = new Map<string, { prefill?: { entry: KernelEntry; loaded: LoadedRecord }; decode?: { entry: KernelEntry; loaded: LoadedRecord } }>();
  for (const [key, won] of best) {
    const [card, family, phase] = key.split('\u0000') as [string, string, 'prefill' | 'decode'];
    const k = `${card}\u0000${family}`;
    byFamily.set(k, { ...byFamily.get(k), [phase]: won });
  }
  const withFreshness = (entry: KernelEntry, loaded: LoadedRecord): KernelEntry => {
    const f = freshness?.(loaded.record);
    return f ? { ...entry, freshness: f } : entry;
  };
  const entries: KernelEntry[] = [];
  for (const { prefill, decode } of byFamily.values()) {
    if (prefill && decode && prefill.loaded === decode.loaded) entries.push(withFreshness(prefill.entry, prefill.loaded));
    else {
      if (prefill) entries.push(withFreshness({ ...prefill.entry, decode: [] }, prefill.loaded));
      if (decode) entries.push(withFreshness({ ...decode.entry, prefill: [] }, decode.loaded));
    }
  }
  entries.sort((a, b) => (a.card !== b.card ? (a.card < b.card ? -1 : 1) : a.family < b.family ? -1 : a.family > b.family ? 1 : 0));
  return { entries, skipped };
}

// ------------------------------------------------------------ the whole page's data

export interface ChartModel {
  tok: TokView;
  environment: EnvEntry[];
  kernels: KernelEntry[];
  /** Lesson 15's serving benchmarks: the newest per card, model and workload. */
  serve: ServeEntry[];
  /** Records of kinds this page does not chart yet (kind -> count). */
  otherKinds: Record<string, number>;
  skipped: SkippedFile[];
  recordCount: number;
}

/** The kinds of record the page charts. */
export const CHARTED_KINDS: readonly string[] = ['bench', 'environment', 'kernel', 'peer', 'serve'];

/** A serving benchmark as the page draws it: the offline rate and, per request rate, what the clients saw. */
export interface ServeEntry {
  file: string;
  card: string;
  model: string;
  workload: string;
  servedLesson: number;
  date: string;
  offlineTokPerS: number;
  rates: ServeRecord['results']['rates'];
}

/** The newest serve record of each card + model + workload. */
export function serveEntries(records: readonly LoadedRecord[]): ServeEntry[] {
  const newest = new Map<string, LoadedRecord<ServeRecord>>();
  for (const r of records) {
    if (r.record.kind !== 'serve') continue;
    const rec = r.record;
    const key = `${rec.hardware.card}\u0000${rec.model.name}\u0000${rec.workload}`;
    const seen = newest.get(key);
    if (!seen || newer(r, seen)) newest.set(key, r as LoadedRecord<ServeRecord>);
  }
  return [...newest.values()].map(({ file, record: r }) => ({
    file,
    card: r.hardware.card,
    model: r.model.name,
    workload: r.workload,
    servedLesson: r.servedLesson,
    date: r.date,
    offlineTokPerS: r.results.offline.outputTokPerS,
    rates: r.results.rates,
  }));
}

/** The page's data; `freshness` marks stale records (pnpm chart passes gitFreshness()). */
export function buildChartModel(loaded: LoadResult, freshness?: FreshnessOf): ChartModel {
  const env = environmentEntries(loaded.records, freshness);
  const kernels = kernelEntries(loaded.records, freshness);
  const otherKinds: Record<string, number> = {};
  for (const { record } of loaded.records) {
    const kind: string = record.kind;
    if (!CHARTED_KINDS.includes(kind)) otherKinds[kind] = (otherKinds[kind] ?? 0) + 1;
  }
  return {
    tok: buildTokSeries(benchRuns(loaded.records), freshness, peerRuns(loaded.records)),
    environment: env.entries,
    kernels: kernels.entries,
    serve: serveEntries(loaded.records),
    otherKinds,
    skipped: [...loaded.skipped, ...env.skipped, ...kernels.skipped],
    recordCount: loaded.records.length,
  };
}
