// From results records to what the chart draws: plain functions, no DOM, no
// Chart.js, so every rule (which run counts, what a multiplier is measured
// against, where the roofline comes from) is unit-tested on the CPU.
//
//   loadRecords(dir)         (records.ts) every *.json under bench-results/, checked; bad files are reported, not dropped silently
//   selectLatest(runs)       one run per (card, workload, model, lesson): the latest complete one, else the latest partial one
//   buildTokSeries(runs)     the tok/s view: one series per card + workload (+ model when ambiguous), aligned on lessons,
//                            each point with its multiplier over the series' previous lesson, partial runs marked,
//                            the series' roofline as a flat line
//   environmentEntries(...)  the per-op view: lesson 00's copy bandwidth, GEMM rate, op overhead and PyTorch baseline
import { type AnyRecord, type BenchRecord, type LoadResult, type LoadedRecord, type Obj, type SkippedFile, isObj, limitsTag } from '../bench/records.ts';
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
  return [r.hardware.card, r.workload, r.model.name, limitsTag(r.settings.engine)].join('\u0000');
}

function newer(a: LoadedRecord, b: LoadedRecord): boolean {
  const da = Date.parse(a.record.date), db = Date.parse(b.record.date);
  return da !== db ? da > db : a.file > b.file;
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
    const cur = best.get(key);
    const better =
      !cur ||
      (cur.record.partial && !run.record.partial) ||
      (cur.record.partial === run.record.partial && newer(run, cur));
    if (better) best.set(key, run);
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
}

export interface TokView {
  /** The x axis: every lesson with at least one selected run, ascending. */
  lessons: number[];
  series: TokSeries[];
}

/** The tok/s view from all bench runs (selectLatest is applied here). */
export function buildTokSeries(runs: readonly LoadedRecord<BenchRecord>[], freshness?: FreshnessOf): TokView {
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
    series.push({
      key,
      label: `${first.hardware.card} · ${first.workload}${ambiguous ? ` · ${first.model.name}` : ''}${limitsTag(first.settings.engine) ? ` · ${limitsTag(first.settings.engine)}` : ''}`,
      card: first.hardware.card,
      workload: first.workload,
      model: first.model.name,
      points,
      ...(roofline ? { roofline } : {}),
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

// ------------------------------------------------------------ the whole page's data

export interface ChartModel {
  tok: TokView;
  environment: EnvEntry[];
  /** Records of kinds this page does not chart yet (kind -> count). */
  otherKinds: Record<string, number>;
  skipped: SkippedFile[];
  recordCount: number;
}

/** The page's data; `freshness` marks stale records (pnpm chart passes gitFreshness()). */
export function buildChartModel(loaded: LoadResult, freshness?: FreshnessOf): ChartModel {
  const env = environmentEntries(loaded.records, freshness);
  const otherKinds: Record<string, number> = {};
  for (const { record } of loaded.records) {
    const kind: string = record.kind;
    if (kind !== 'bench' && kind !== 'environment') otherKinds[kind] = (otherKinds[kind] ?? 0) + 1;
  }
  return {
    tok: buildTokSeries(benchRuns(loaded.records), freshness),
    environment: env.entries,
    otherKinds,
    skipped: [...loaded.skipped, ...env.skipped],
    recordCount: loaded.records.length,
  };
}
