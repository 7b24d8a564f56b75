// The results page: bench-results/index.html. One self-contained file (Chart.js's
// UMD build is inlined), so it opens from file:// with no network.
//
// Everything the charts show is decided here, in TypeScript: chartSpecs() turns
// the ChartModel into plain JSON specs (labels, datasets, the text drawn over
// points), and the small script in the page only hands them to Chart.js. The
// page exposes what it drew as window.__aiosCharts (the Chart instances) and
// window.__aiosReady, which the browser test and the screenshot wait for.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { LESSONS } from '../cli/lessons.ts';
import { describeFreshness } from '../bench/staleness.ts';
import type { ChartModel, EnvEntry, KernelEntry, KernelShapeEntry, KernelTimingEntry, ServeEntry, TokView } from './data.ts';

// ------------------------------------------------------------ formatting

/** 4206.0 -> "4,206", 98.61 -> "98.6", 4.7951 -> "4.80". */
export function fmt(n: number): string {
  const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2;
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A multiplier as the chart prints it: "×2.13", "×15.2". */
export function fmtMultiplier(m: number): string {
  return `×${m >= 10 ? m.toFixed(1) : m.toFixed(2)}`;
}

/** Milliseconds to three significant digits: "0.0207", "0.936", "19.4", "152". */
export function fmtMs(ms: number): string {
  return ms >= 100 ? fmt(ms) : ms.toPrecision(3);
}

/** A share in percent: "56%", "4.9%". */
export function fmtPct(p: number): string {
  return `${p >= 10 ? p.toFixed(0) : p.toFixed(1)}%`;
}

/** Bytes in binary units: "4 MiB", "1 GiB", "1.5 GiB". */
export function fmtBytes(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toLocaleString('en-US', { maximumFractionDigits: 2 })} ${units[i]}`;
}

/** FLOPs as "138 GFLOP", "1.10 TFLOP". */
export function fmtFlops(f: number): string {
  return f >= 1e12 ? `${fmt(f / 1e12)} TFLOP` : f >= 1e9 ? `${fmt(f / 1e9)} GFLOP` : `${fmt(f / 1e6)} MFLOP`;
}

export function lessonLabel(n: number): string {
  const info = LESSONS.find((l) => l.number === n);
  return `${String(n).padStart(2, '0')} ${info ? info.slug : '(unknown lesson)'}`;
}

// ------------------------------------------------------------ chart specs

/** 'peer': another engine's run of the same workload (a reference line, as a roofline is). */
export type DatasetRole = 'measured' | 'roofline' | 'peer' | 'ours' | 'baseline';

/**
 * The roles drawn as reference lines (flat, thin, labelled at an end of the line, kept clear
 * of the other labels) and the dash of each: the page script draws every role listed here alike.
 */
const REFERENCE_DASH: Partial<Record<DatasetRole, readonly [number, number]>> = { roofline: [6, 4], peer: [2, 3] };

export interface DatasetSpec {
  label: string;
  role: DatasetRole;
  data: (number | null)[];
  color: string;
  /** Per point: true where the run stopped early (measured datasets only). */
  partial?: boolean[];
  /** Per point: true where the lesson's code changed after the record's commit (measured datasets only). */
  stale?: boolean[];
  /** Per point: the slowest and fastest of the record's repeated runs, drawn as a bar through the point; null for one run. */
  ranges?: ([number, number] | null)[];
  /** Text drawn above each point or bar (the multiplier, the value); null for none. */
  pointLabels?: (string | null)[];
  /** Extra tooltip line per point. */
  notes?: (string | null)[];
  /** Reference lines (REFERENCE_DASH): which end of the line its label goes to (default: the right end). */
  labelAt?: 'start' | 'end';
}

export interface ChartSpec {
  type: 'line' | 'bar';
  title: string;
  /** One per x position; an array is drawn as lines stacked under each other. */
  labels: (string | string[])[];
  yTitle: string;
  logarithmic: boolean;
  /** Axis range hints (log charts: headroom so no point or roofline sits on the frame). */
  suggestedMin?: number;
  suggestedMax?: number;
  datasets: DatasetSpec[];
}

export interface KernelSpecs {
  /** The canvases' id prefix: `${id}-prefill`, `${id}-decode`. */
  id: string;
  /** Null where the record has no shape of that phase. */
  prefill: ChartSpec | null;
  decode: ChartSpec | null;
}

export interface PageSpecs {
  /** Null when no lesson run is recorded: the page says so instead of drawing an empty chart. */
  tokps: ChartSpec | null;
  copy: ChartSpec | null;
  gemm: ChartSpec | null;
  overhead: ChartSpec | null;
  /** One per kernel record shown (the latest per card and family). */
  kernels: KernelSpecs[];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
const OURS = '#1f77b4';
const BASELINE = '#ff7f0e';

export function tokChartSpec(tok: TokView): ChartSpec | null {
  if (tok.series.length === 0) return null;
  const datasets: DatasetSpec[] = [];
  tok.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    datasets.push({
      label: s.label,
      role: 'measured',
      data: s.points.map((p) => (p ? p.tokPerS : null)),
      color,
      partial: s.points.map((p) => p?.partial ?? false),
      stale: s.points.map((p) => p?.freshness?.state === 'stale'),
      ranges: s.points.map((p) => (p?.repeats ? [p.repeats.min, p.repeats.max] : null)),
      pointLabels: s.points.map((p) => (p && p.multiplier !== undefined ? fmtMultiplier(p.multiplier) : null)),
      notes: s.points.map((p) =>
        p
          ? [
              p.partial ? 'partial run (stopped by its time budget)' : null,
              p.multiplier !== undefined ? `${fmtMultiplier(p.multiplier)} over lesson ${String(p.prevLesson).padStart(2, '0')}` : null,
              p.repeats ? `median of ${p.repeats.count} runs: ${fmt(p.repeats.min)} to ${fmt(p.repeats.max)} (spread ${p.repeats.spreadPct.toFixed(1)}%)` : '1 run: no spread measured',
              p.freshness ? describeFreshness(p.freshness) : null,
              `${p.file} (commit ${p.commit})`,
            ]
              .filter(Boolean)
              .join('; ')
          : null,
      ),
    });
    if (s.roofline)
      datasets.push({
        label: `${s.label}: roofline`,
        role: 'roofline',
        data: tok.lessons.map(() => s.roofline!.tokPerS),
        color,
        pointLabels: tok.lessons.map((_, j) => (j === tok.lessons.length - 1 ? `roofline ${fmt(s.roofline!.tokPerS)}` : null)),
        notes: tok.lessons.map(() => `roofline: ${s.roofline!.basis} (${s.roofline!.file})`),
      });
    for (const p of s.peers ?? [])
      datasets.push({
        label: `${s.label}: ${p.label}`,
        role: 'peer',
        data: tok.lessons.map(() => p.tokPerS),
        color,
        labelAt: 'start',
        pointLabels: tok.lessons.map((_, j) => (j === 0 ? `${p.label} ${fmt(p.tokPerS)}` : null)),
        notes: tok.lessons.map(() => [`another engine on the same card, model and workload: ${p.label}`, p.partial ? 'partial run' : null, p.note ?? null, `${p.file}`].filter(Boolean).join('; ')),
      });
  });
  const values = datasets.flatMap((d) => [...d.data.filter((v): v is number => v !== null), ...(d.ranges ?? []).flatMap((r) => r ?? [])]);
  return {
    type: 'line',
    title: 'Output tokens per second, per lesson',
    labels: tok.lessons.map(lessonLabel),
    yTitle: 'output tok/s (log scale)',
    logarithmic: true,
    suggestedMin: Math.min(...values) / 1.6,
    suggestedMax: Math.max(...values) * 1.6,
    datasets,
  };
}

type Column = { label: string; data: (number | null)[] };

function envBar(title: string, yTitle: string, entries: EnvEntry[], ours: Column[], baseline?: Column): ChartSpec {
  const datasets: DatasetSpec[] = ours.map((o, i) => ({
    label: o.label,
    role: 'ours',
    data: o.data,
    color: ours.length === 1 ? OURS : PALETTE[i % PALETTE.length]!,
    pointLabels: o.data.map((v) => (v === null ? null : fmt(v))),
  }));
  if (baseline && baseline.data.some((v) => v !== null))
    datasets.push({ label: baseline.label, role: 'baseline', data: baseline.data, color: BASELINE, pointLabels: baseline.data.map((v) => (v === null ? null : fmt(v))) });
  return { type: 'bar', title, labels: entries.map((e) => e.card), yTitle, logarithmic: false, datasets };
}

function torchLabel(entries: EnvEntry[]): string {
  const versions = [...new Set(entries.flatMap((e) => (e.baseline ? [e.baseline.torch] : [])))];
  return versions.length === 1 ? `PyTorch ${versions[0]} (same card)` : 'PyTorch (same card)';
}

export function environmentSpecs(entries: EnvEntry[]): Pick<PageSpecs, 'copy' | 'gemm' | 'overhead'> {
  if (entries.length === 0) return { copy: null, gemm: null, overhead: null };
  const torch = torchLabel(entries);
  const overhead: Column[] = [
    { label: 'AIOS-TS: ops.add through the facade (host)', data: entries.map((e) => e.overhead.facadeUs) },
    { label: 'AIOS-TS: raw binding, no checks (host)', data: entries.map((e) => e.overhead.bindingUs) },
  ];
  // Measurements older records lack: a column where any card has them, a gap where one does not.
  if (entries.some((e) => e.overhead.deviceUs !== undefined))
    overhead.push({ label: 'AIOS-TS: stream time per op, back to back', data: entries.map((e) => e.overhead.deviceUs ?? null) });
  if (entries.some((e) => e.overhead.cudaLaunchUs !== undefined))
    overhead.push({ label: 'bare CUDA launch from C++ (host)', data: entries.map((e) => e.overhead.cudaLaunchUs ?? null) });
  const dtypes = [...new Set(entries.map((e) => e.gemm.dtype))].join('/');
  return {
    copy: envBar('Device copy bandwidth (read + write)', 'GB/s', entries, [{ label: 'AIOS-TS: ops.copy', data: entries.map((e) => e.copy.gbPerS) }], {
      label: torch,
      data: entries.map((e) => e.baseline?.copyGbPerS ?? null),
    }),
    gemm: envBar(`${dtypes} GEMM rate`, 'TFLOP/s', entries, [{ label: 'AIOS-TS: ops.matmul (cuBLASLt)', data: entries.map((e) => e.gemm.tflops) }], {
      label: torch,
      data: entries.map((e) => e.baseline?.gemmTflops ?? null),
    }),
    overhead: envBar('Cost of one tiny op', 'µs per call', entries, overhead, {
      label: `${torch.replace(' (same card)', '')}: torch.add (host)`,
      data: entries.map((e) => e.baseline?.addOverheadUs ?? null),
    }),
  };
}

// ------------------------------------------------------------ kernel records

/** Lesson 08's kernel (where lesson 09 starts) in grey; lesson 09's versions in blues, darker as they get newer. */
const LESSON08_COLOR = '#7f7f7f';
const VERSION_COLORS = ['#74a9cf', '#3690c0', '#0570b0', '#034e7b', '#1b2a5e'];
const COPY_COLOR = '#d62728';

/** Every version measured on any of the shapes, in the record's order (oldest first). */
export function kernelVersions(shapes: readonly KernelShapeEntry[]): string[] {
  const seen: string[] = [];
  for (const s of shapes) for (const v of s.versions) if (!seen.includes(v.version)) seen.push(v.version);
  return seen;
}

/** The newest of lesson 09's versions on these shapes (the last in the record's order). */
function newestVersion(shapes: readonly KernelShapeEntry[]): string | undefined {
  return kernelVersions(shapes).filter((v) => v !== 'lesson08').at(-1);
}

export function versionLabel(v: string, lesson: number): string {
  return v === 'lesson08' ? "lessons 07-08's kernel (pagedAttention)" : /^v\d+$/.test(v) ? `lesson ${String(lesson).padStart(2, '0')} ${v}` : v;
}

function versionColor(v: string): string {
  if (v === 'lesson08') return LESSON08_COLOR;
  const m = /^v(\d+)$/.exec(v);
  return m ? VERSION_COLORS[(Number(m[1]) - 1) % VERSION_COLORS.length]! : PALETTE[6]!;
}

export function peerLabel(e: KernelEntry): string {
  const lib = e.peer?.library.replace(/^torch\.nn\.functional\.scaled_dot_product_attention/, 'PyTorch SDPA') ?? 'peer library';
  return `${lib}${e.peer?.version ? ` ${e.peer.version}` : ''}, same call`;
}

/** The x label of a shape: model and heads, then the batch and lengths, one per line. */
export function shapeLabel(s: KernelShapeEntry): string[] {
  if (s.phase === 'prefill') return [`${s.model} (${s.qHeads}/${s.kvHeads} heads)`, `${s.seqs} × ${s.qLen.toLocaleString('en-US')} tokens`];
  const ctx = s.context % 1024 === 0 ? `${s.context / 1024}k` : s.context.toLocaleString('en-US');
  return [`${s.model}`, `batch ${s.seqs}`, `ctx ${ctx}`];
}

/** How a timing was measured, for tooltips: median, min to max, repeats, the check against lesson 08. */
function timingNote(t: KernelTimingEntry): string {
  const parts: string[] = [];
  if (t.medianMs !== undefined) parts.push(`median ${fmtMs(t.medianMs)} ms`);
  if (t.minMs !== undefined && t.maxMs !== undefined) parts.push(`min ${fmtMs(t.minMs)} to max ${fmtMs(t.maxMs)} ms`);
  if (t.repeats !== undefined) parts.push(`${t.repeats} repeats${t.callsPerRepeat !== undefined ? ` of ${t.callsPerRepeat} call(s)` : ''}`);
  if (typeof t.relErrVsLesson08 === 'number' && t.version !== 'lesson08') parts.push(`rel. error vs lesson 08 ${t.relErrVsLesson08.toExponential(1)}`);
  if (t.relErrVsLesson08 === null) parts.push('rel. error vs lesson 08: NaN');
  if (t.error) parts.push(`error: ${t.error}`);
  return parts.join('; ');
}

/** A rate over its reference, in percent; undefined where either is missing. */
function pctOf(rate: number | undefined, ref: number | undefined): number | undefined {
  return rate !== undefined && ref !== undefined && ref > 0 ? (100 * rate) / ref : undefined;
}

function kernelPhaseSpec(e: KernelEntry, phase: 'prefill' | 'decode'): ChartSpec | null {
  const shapes = phase === 'prefill' ? e.prefill : e.decode;
  if (shapes.length === 0) return null;
  const copy = phase === 'decode' ? e.copy.gbPerS : undefined;
  const newest = newestVersion(shapes);
  const datasets: DatasetSpec[] = kernelVersions(shapes).map((v) => {
    const timings = shapes.map((s) => s.versions.find((t) => t.version === v));
    const data = timings.map((t) => t?.rate ?? null);
    return {
      label: versionLabel(v, e.lesson),
      role: 'ours' as const,
      data,
      color: versionColor(v),
      // Prefill: every bar's value (six bars a shape fit); decode: the newest version's share of the copy bandwidth (the other bars are too narrow for text).
      pointLabels:
        phase === 'prefill'
          ? data.map((r) => (r === null ? null : fmt(r)))
          : v === newest
            ? data.map((r) => {
                const p = pctOf(r ?? undefined, copy);
                return p === undefined ? null : `${fmtPct(p)}`;
              })
            : data.map(() => null),
      notes: timings.map((t, i) => {
        if (!t) return null;
        const ref = phase === 'prefill' ? pctOf(t.rate, shapes[i]!.peer?.rate) : pctOf(t.rate, copy);
        return [timingNote(t), ref === undefined ? null : `${fmtPct(ref)} of ${phase === 'prefill' ? 'SDPA' : 'the copy bandwidth'}`].filter(Boolean).join('; ');
      }),
    };
  });
  if (shapes.some((s) => s.peer?.rate !== undefined)) {
    const data = shapes.map((s) => s.peer?.rate ?? null);
    datasets.push({
      label: peerLabel(e),
      role: 'baseline',
      data,
      color: BASELINE,
      pointLabels: phase === 'prefill' ? data.map((r) => (r === null ? null : fmt(r))) : data.map(() => null),
      notes: shapes.map((s) => (s.peer ? [timingNote(s.peer), s.peer.note ?? null, phase === 'decode' && pctOf(s.peer.rate, copy) !== undefined ? `${fmtPct(pctOf(s.peer.rate, copy)!)} of the copy bandwidth` : null].filter(Boolean).join('; ') : null)),
    });
  }
  if (copy !== undefined)
    datasets.push({
      label: 'device copy, read + write (same call)',
      role: 'roofline',
      data: shapes.map(() => copy),
      color: COPY_COLOR,
      // At the left end, over the batch-1 shapes' short bars: the right end's bars reach up to the line.
      labelAt: 'start',
      pointLabels: shapes.map((_, i) => (i === 0 ? `device copy ${fmt(copy)} GB/s (same call)` : null)),
      notes: shapes.map(() => `1 GiB device-to-device copy measured in the same call as the kernels (${e.file})`),
    });
  const values = datasets.flatMap((d) => d.data.filter((v): v is number => v !== null));
  const family = e.family === 'flash-attention' ? 'FlashAttention' : e.family;
  return {
    type: 'bar',
    title:
      phase === 'prefill'
        ? `Lesson ${String(e.lesson).padStart(2, '0')} ${family} prefill on ${e.card}: TFLOP/s per shape (causal${e.dtype ? `, ${e.dtype}` : ''})`
        : `Lesson ${String(e.lesson).padStart(2, '0')} ${family} decode on ${e.card}: K/V bytes read per second, per shape${e.dtype ? ` (${e.dtype})` : ''}`,
    labels: shapes.map(shapeLabel),
    yTitle: `${phase === 'prefill' ? 'TFLOP/s' : 'K/V GB/s'} (log scale)`,
    // Rates from lessons 07-08's kernel to the newest version span one to two decades: a linear axis would flatten the old ones to nothing.
    logarithmic: true,
    suggestedMin: Math.min(...values) / 1.8,
    suggestedMax: Math.max(...values) * (phase === 'prefill' ? 1.8 : 2.2),
    datasets: datasets.map((d) => ({ ...d, notes: d.notes?.map((n, i) => (n === null ? null : `${shapes[i]!.name}: ${n}`)) })),
  };
}

export function kernelSpecs(entries: readonly KernelEntry[]): KernelSpecs[] {
  return entries.map((e, i) => ({ id: `kernel-${i}`, prefill: kernelPhaseSpec(e, 'prefill'), decode: kernelPhaseSpec(e, 'decode') }));
}

export function chartSpecs(model: ChartModel): PageSpecs {
  return { tokps: tokChartSpec(model.tok), ...environmentSpecs(model.environment), kernels: kernelSpecs(model.kernels) };
}

// ------------------------------------------------------------ HTML

/** Lesson 15's serving benchmarks: one table per record, a row per request rate (client-side latencies, ms). */
export function serveTables(entries: readonly ServeEntry[]): string {
  const ms = (x: { p50: number; p99: number }) => `<td class="num">${fmt(x.p50)}</td><td class="num">${fmt(x.p99)}</td>`;
  return entries
    .map((e) => {
      const rows = e.rates
        .map(
          (r) =>
            `<tr><td>${r.rate === null ? 'unbounded' : `${fmt(r.rate)} req/s`}</td><td class="num">${fmt(r.outputTokPerS)}</td><td class="num">${fmt((100 * r.outputTokPerS) / e.offlineTokPerS)}%</td>` +
            `${ms(r.ttftMs)}${ms(r.tpotMs)}${ms(r.itlMs)}<td class="num">${fmt(r.loop.stepMsMean)} / ${fmt(r.loop.overheadMsMean)}</td></tr>`,
        )
        .join('');
      return (
        `<p class="sub">${escapeHtml(e.card)}, ${escapeHtml(e.model)}, workload ${escapeHtml(e.workload)}, lesson ${String(e.servedLesson).padStart(2, '0')}'s engine; offline ${fmt(e.offlineTokPerS)} tok/s (${escapeHtml(e.file)})</p>` +
        `<table><tr><th>rate</th><th>output tok/s</th><th>of offline</th><th>TTFT p50</th><th>TTFT p99</th><th>TPOT p50</th><th>TPOT p99</th><th>ITL p50</th><th>ITL p99</th><th>loop ms/step: step / around</th></tr>${rows}</table>`
      );
    })
    .join('');
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Chart.js's UMD build, read from node_modules (a dependency of @aios/engine-core). */
export function chartJsSource(): { version: string; source: string } {
  const require = createRequire(import.meta.url);
  const dist = path.dirname(require.resolve('chart.js')); // .../chart.js/dist/chart.cjs
  const pkg = JSON.parse(readFileSync(path.join(dist, '..', 'package.json'), 'utf8')) as { version: string };
  return { version: pkg.version, source: readFileSync(path.join(dist, 'chart.umd.min.js'), 'utf8') };
}

/** Text safe inside <script>: no "</script" can end the element early ("<\/" means "</" in JS strings, regexes and comments). */
function scriptSafe(js: string): string {
  return js.replace(/<\/(script)/gi, '<\\/$1');
}

function tokTable(model: ChartModel): string {
  const rows: string[] = [];
  for (const s of model.tok.series)
    for (const p of s.points) {
      if (!p) continue;
      rows.push(
        `<tr><td>${escapeHtml(s.label)}</td><td>${escapeHtml(lessonLabel(p.lesson))}</td><td class="num">${fmt(p.tokPerS)}</td>` +
          `<td class="num">${p.multiplier !== undefined ? `${fmtMultiplier(p.multiplier)} over ${String(p.prevLesson).padStart(2, '0')}` : ''}</td>` +
          `<td>${p.partial ? '<b>partial</b>' : 'complete'}</td>` +
          `<td class="num">${p.repeats ? `${p.repeats.count}: ${fmt(p.repeats.min)} to ${fmt(p.repeats.max)} (${p.repeats.spreadPct.toFixed(1)}%)` : '1'}</td>` +
          `<td class="num">${s.roofline ? fmt(s.roofline.tokPerS) : ''}</td>` +
          `<td class="num">${p.firstTokenMs ? `${fmt(p.firstTokenMs.p50)} / ${fmt(p.firstTokenMs.p99)}` : ''}</td>` +
          `<td><code>${escapeHtml(p.file)}</code></td><td><code>${escapeHtml(p.commit)}</code></td>` +
          `<td class="${p.freshness?.state ?? 'unchecked'}">${p.freshness ? escapeHtml(describeFreshness(p.freshness)) : 'not checked'}</td></tr>`,
      );
    }
  return `<table><thead><tr><th>card · workload</th><th>lesson</th><th>output tok/s</th><th>over previous</th><th>run</th><th>runs: slowest to fastest (spread)</th><th>roofline tok/s</th><th>time to first token p50 / p99, ms</th><th>record</th><th>commit</th><th>still true of the code?</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function envTable(entries: EnvEntry[]): string {
  const rows = entries.map((e) => {
    const b = e.baseline;
    const ratio = (ours: number, theirs: number | undefined) => (theirs === undefined ? '' : ` (${fmt((100 * ours) / theirs)}% of PyTorch)`);
    return (
      `<tr><td>${escapeHtml(e.card)}${e.quick ? ' (--quick run)' : ''}</td>` +
      `<td class="num">${fmt(e.copy.gbPerS)} GB/s${ratio(e.copy.gbPerS, b?.copyGbPerS)}</td>` +
      `<td class="num">${fmt(e.gemm.tflops)} TFLOP/s${ratio(e.gemm.tflops, b?.gemmTflops)}<br><small>${escapeHtml(e.gemm.dtype)} ${e.gemm.M}×${e.gemm.N}×${e.gemm.K}</small></td>` +
      `<td class="num">${fmt(e.overhead.facadeUs)} / ${fmt(e.overhead.bindingUs)} / ${e.overhead.deviceUs !== undefined ? fmt(e.overhead.deviceUs) : '–'} / ${e.overhead.cudaLaunchUs !== undefined ? fmt(e.overhead.cudaLaunchUs) : '–'}</td>` +
      `<td>${b ? `PyTorch ${escapeHtml(b.torch)}: ${fmt(b.copyGbPerS)} GB/s, ${fmt(b.gemmTflops)} TFLOP/s${b.addOverheadUs !== undefined ? `, ${fmt(b.addOverheadUs)} µs/add` : ''}` : 'none recorded'}</td>` +
      `<td><code>${escapeHtml(e.file)}</code><br><code>${escapeHtml(e.commit)}</code>${e.freshness ? `<br><span class="${e.freshness.state}">${escapeHtml(describeFreshness(e.freshness))}</span>` : ''}</td></tr>`
    );
  });
  return (
    `<table><thead><tr><th>card</th><th>copy</th><th>GEMM</th><th>tiny op, µs: facade / binding / stream / bare launch</th><th>baseline</th><th>record, commit</th></tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table>`
  );
}

/** Where a kernel record came from: its file, commit and date, whether it is complete, whether the code changed since. */
function kernelRecordLine(e: KernelEntry): string {
  return (
    `Record <code>${escapeHtml(e.file)}</code> (commit <code>${escapeHtml(e.commit)}</code>, ${escapeHtml(e.date)}${e.quick ? ', a --quick run' : ''})` +
    `${e.partial ? `, <b>partial run</b> (${escapeHtml(e.partial)})` : ''}` +
    `${e.freshness ? `: <span class="${e.freshness.state}">${escapeHtml(describeFreshness(e.freshness))}</span>` : ''}.`
  );
}

/** The copy bandwidth measured in the same call, and the other copy numbers the record quotes beside it. */
function kernelCopyLine(e: KernelEntry): string {
  const copy = e.copy;
  const others = [
    copy.peerGbPerS !== undefined ? `PyTorch's copy in the same call ${fmt(copy.peerGbPerS)} GB/s` : null,
    copy.lesson00GbPerS !== undefined ? `lesson 00's record ${fmt(copy.lesson00GbPerS)} GB/s${copy.lesson00Record ? ` (<code>${escapeHtml(copy.lesson00Record)}</code>)` : ''}` : null,
  ].filter(Boolean);
  return `Device copy (1 GiB, read + write bytes) in the same call: ${copy.gbPerS !== undefined ? `${fmt(copy.gbPerS)} GB/s` : 'not recorded'}${others.length ? ` (${others.join('; ')})` : ''}.`;
}

function kernelCell(t: KernelTimingEntry | undefined, unit: string, ref: number | undefined, refName: string): string {
  if (!t) return '<td class="num">–</td>';
  if (t.error) return `<td class="error">error: ${escapeHtml(t.error)}</td>`;
  const p = pctOf(t.rate, ref);
  const lines = [
    t.medianMs !== undefined ? `${fmtMs(t.medianMs)} ms` : 'no time recorded',
    t.rate !== undefined ? `${fmt(t.rate)} ${unit}` : `no ${unit} recorded`,
    p !== undefined ? `<small>${fmtPct(p)} of ${refName}</small>` : null,
  ].filter(Boolean);
  return `<td class="num" title="${escapeHtml(timingNote(t))}">${lines.join('<br>')}</td>`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

function kernelTable(e: KernelEntry, phase: 'prefill' | 'decode'): string {
  const shapes = phase === 'prefill' ? e.prefill : e.decode;
  if (shapes.length === 0) return '';
  const versions = kernelVersions(shapes);
  const unit = phase === 'prefill' ? 'TFLOP/s' : 'GB/s';
  const refName = phase === 'prefill' ? 'SDPA' : 'copy';
  const hasPeer = shapes.some((s) => s.peer);
  const rows = shapes.map((s) => {
    const ref = phase === 'prefill' ? s.peer?.rate : e.copy.gbPerS;
    return (
      `<tr><td>${escapeHtml(s.name)}<br><small>${s.qHeads}/${s.kvHeads} heads × ${s.headDim}; ${plural(s.seqs, 'sequence')} × ${plural(s.qLen, 'query', 'queries')} over ${plural(s.context, 'key')}</small></td>` +
      `<td class="num">${phase === 'prefill' ? fmtFlops(s.flops) : fmtBytes(s.kvBytes)}</td>` +
      versions.map((v) => kernelCell(s.versions.find((t) => t.version === v), unit, ref, refName)).join('') +
      (hasPeer ? (s.peer ? kernelCell(s.peer, unit, phase === 'decode' ? e.copy.gbPerS : undefined, refName) : '<td>not measured</td>') : '') +
      '</tr>'
    );
  });
  const head =
    `<th>shape</th><th>${phase === 'prefill' ? 'FLOPs (causal)' : 'K/V bytes read'}</th>` +
    versions.map((v) => `<th>${escapeHtml(versionLabel(v, e.lesson))}</th>`).join('') +
    (hasPeer ? `<th>${escapeHtml(peerLabel(e))}</th>` : '');
  const what =
    phase === 'prefill'
      ? 'median ms per call, TFLOP/s, and % of SDPA\'s TFLOP/s on the same shape'
      : `median ms per call, K/V GB/s, and % of the copy bandwidth measured in the same call (${e.copy.gbPerS !== undefined ? `${fmt(e.copy.gbPerS)} GB/s` : 'not recorded'})`;
  return `<h3>${phase === 'prefill' ? 'Prefill' : 'Decode'}: ${what}</h3><table><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function kernelDetails(entries: readonly KernelEntry[]): string {
  return entries
    .map(
      (e) =>
        `<h2>Kernels: lesson ${String(e.lesson).padStart(2, '0')} ${escapeHtml(e.family)} on ${escapeHtml(e.card)}</h2>` +
        `<p class="sub">${kernelRecordLine(e)} Peer: ${e.peer ? `${escapeHtml(e.peer.library)}${e.peer.version ? ` ${escapeHtml(e.peer.version)}` : ''}${e.peer.note ? ` (${escapeHtml(e.peer.note)})` : ''}` : 'none recorded'}. ` +
        `${kernelCopyLine(e)} Hover a cell for the min and max over the repeats and the check against lessons 07-08's kernel; a dash: not measured.</p>` +
        kernelTable(e, 'prefill') +
        kernelTable(e, 'decode'),
    )
    .join('');
}

/** One sentence a shape range can back: "52% to 56%", or "56%" where they agree. */
function pctRange(values: number[]): string {
  const lo = Math.min(...values), hi = Math.max(...values);
  return fmtPct(lo) === fmtPct(hi) ? fmtPct(lo) : `${fmtPct(lo)} to ${fmtPct(hi)}`;
}

function kernelSection(e: KernelEntry, spec: KernelSpecs): string {
  const charts = [
    spec.prefill ? `<div class="chart"><canvas id="${spec.id}-prefill"></canvas></div>` : '',
    spec.decode ? `<div class="chart tall"><canvas id="${spec.id}-decode"></canvas></div>` : '',
  ].join('\n');
  const said: string[] = [];
  const pNew = newestVersion(e.prefill);
  const pShares = e.prefill.flatMap((s) => {
    const p = pctOf(s.versions.find((t) => t.version === pNew)?.rate, s.peer?.rate);
    return p === undefined ? [] : [p];
  });
  if (pNew && pShares.length) said.push(`prefill ${escapeHtml(pNew)} reaches ${pctRange(pShares)} of SDPA's TFLOP/s on its ${pShares.length} shape(s)`);
  const dNew = newestVersion(e.decode);
  const dShares = e.decode.flatMap((s) => {
    const p = pctOf(s.versions.find((t) => t.version === dNew)?.rate, e.copy.gbPerS);
    return p === undefined ? [] : [p];
  });
  if (dNew && dShares.length) said.push(`decode ${escapeHtml(dNew)} reads K/V at ${pctRange(dShares)} of the copy bandwidth measured in the same call (the % over its bars)`);
  return `${charts}
<p class="legend">Lesson ${String(e.lesson).padStart(2, '0')}'s ${escapeHtml(e.family)} kernels on the ${escapeHtml(e.card)}, version by version${e.family === 'flash-attention' ? ' (native/src/flash.h says what each adds)' : ''},
beside lessons 07-08's kernel and ${escapeHtml(peerLabel(e))}: the same inputs, one call, log scales; bars are medians over the repeats, and a missing bar was not measured.
${said.length ? `In this record ${said.join('; ')}.` : ''}<br>${kernelRecordLine(e)} ${kernelCopyLine(e)}</p>`;
}

const PAGE_SCRIPT = String.raw`
(function () {
  var data = JSON.parse(document.getElementById('aios-data').textContent);
  var specs = data.specs;
  var REFERENCE_DASH = ${JSON.stringify(REFERENCE_DASH)};
  // Draws the range bars of repeated runs, then each dataset's pointLabels (multipliers,
  // values) near its points and bars, placed so that no two labels overlap: each label
  // takes the first free spot from a list of candidates (above the point, below it,
  // further out). What was drawn is kept in chart.$aiosLabels ({text, x, y, w, h}, the
  // box's left, top, width and height) for the browser test to check.
  var labelsPlugin = {
    id: 'aiosPointLabels',
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      var area = chart.chartArea;
      ctx.save();
      chart.data.datasets.forEach(function (ds, i) {
        if (!ds.aiosRanges || !chart.isDatasetVisible(i)) return;
        var y = chart.scales.y;
        ctx.strokeStyle = ds.borderColor;
        ctx.lineWidth = 1.5;
        chart.getDatasetMeta(i).data.forEach(function (el, j) {
          var r = ds.aiosRanges[j];
          if (!r || el.skip) return;
          var top = y.getPixelForValue(r[1]), bottom = y.getPixelForValue(r[0]);
          ctx.beginPath();
          ctx.moveTo(el.x, top); ctx.lineTo(el.x, bottom);
          ctx.moveTo(el.x - 5, top); ctx.lineTo(el.x + 5, top);
          ctx.moveTo(el.x - 5, bottom); ctx.lineTo(el.x + 5, bottom);
          ctx.stroke();
        });
      });
      ctx.font = '12px sans-serif';
      ctx.textBaseline = 'top';
      var H = 14;
      var placed = [];
      // In a bar chart, a reference line (the copy bandwidth over decode bars) is kept clear of text too.
      var obstacles = [];
      if (chart.config.type === 'bar')
        chart.data.datasets.forEach(function (ds, i) {
          if (!REFERENCE_DASH[ds.aiosRole] || !chart.isDatasetVisible(i)) return;
          var pts = chart.getDatasetMeta(i).data.filter(function (el) { return !el.skip; });
          if (!pts.length) return;
          var x0 = Math.min.apply(null, pts.map(function (el) { return el.x; })), x1 = Math.max.apply(null, pts.map(function (el) { return el.x; }));
          obstacles.push({ x: x0, y: pts[0].y - 1.5, w: x1 - x0, h: 3 });
        });
      function free(b) {
        if (b.x < area.left - 40 || b.x + b.w > chart.width || b.y < 0 || b.y + b.h > chart.height) return false;
        var taken = placed.concat(obstacles);
        for (var k = 0; k < taken.length; k++) {
          var p = taken[k];
          if (b.x < p.x + p.w && p.x < b.x + b.w && b.y < p.y + p.h && p.y < b.y + b.h) return false;
        }
        return true;
      }
      function place(text, color, candidates) {
        var w = ctx.measureText(text).width + 2;
        var box = null;
        for (var c = 0; c < candidates.length && !box; c++) {
          var a = candidates[c].align;
          var b = { text: text, x: a === 'right' ? candidates[c].x - w : a === 'left' ? candidates[c].x : candidates[c].x - w / 2, y: candidates[c].y, w: w, h: H };
          if (free(b)) box = b;
        }
        if (!box) return; // no free spot: drop the label rather than draw it over another (the tooltip and the table still have it)
        placed.push(box);
        ctx.fillStyle = color;
        ctx.textAlign = 'left';
        ctx.fillText(text, box.x + 1, box.y + 1);
      }
      var rooflines = [];
      chart.data.datasets.forEach(function (ds, i) {
        if (!ds.aiosPointLabels || !chart.isDatasetVisible(i)) return;
        chart.getDatasetMeta(i).data.forEach(function (el, j) {
          var text = ds.aiosPointLabels[j];
          if (!text || el.skip) return;
          if (REFERENCE_DASH[ds.aiosRole]) { rooflines.push({ text: text, color: ds.borderColor, y: el.y, start: ds.aiosLabelAt === 'start' }); return; }
          var gap = ds.aiosRole === 'measured' ? 9 : 3;
          var cands = [];
          // Around a reference line, finer steps: a label just clears the line rather than jumping a line height past it.
          var dy = obstacles.length ? 3 : H, steps = obstacles.length ? 28 : 6;
          for (var step = 0; step < steps; step++) {
            cands.push({ x: el.x, y: el.y - gap - H - step * dy });
            if (ds.aiosRole === 'measured') cands.push({ x: el.x, y: el.y + gap + step * dy });
          }
          place(text, ds.borderColor, cands);
        });
      });
      // Reference-line labels (rooflines, peers) at the right end of their lines (or the left, where asked), inside the plot.
      rooflines.sort(function (a, b) { return a.y - b.y; });
      rooflines.forEach(function (l) {
        var cands = [];
        for (var step = 0; step < 8; step++) cands.push(l.start ? { x: area.left + 4, y: l.y - 3 - H + step * H, align: 'left' } : { x: area.right - 4, y: l.y - 3 - H + step * H, align: 'right' });
        place(l.text, l.color, cands);
      });
      chart.$aiosLabels = placed;
      ctx.restore();
    }
  };
  function build(id, spec) {
    if (!spec) return null;
    var multi = spec.labels.length === 1;
    var datasets = spec.datasets.map(function (d) {
      var ds = {
        label: d.label, data: d.data, borderColor: d.color, backgroundColor: d.color,
        aiosRole: d.role, aiosPartial: d.partial || null, aiosStale: d.stale || null, aiosRanges: d.ranges || null,
        aiosPointLabels: d.pointLabels || null, aiosNotes: d.notes || null, aiosLabelAt: d.labelAt || 'end'
      };
      if (spec.type === 'line' && d.role === 'measured') {
        ds.spanGaps = true;
        ds.borderWidth = 2;
        ds.pointRadius = 6;
        ds.pointHoverRadius = 8;
        var stale = d.stale || d.partial.map(function () { return false; });
        ds.pointStyle = d.partial.map(function (p, j) { return p ? 'triangle' : stale[j] ? 'rectRot' : 'circle'; });
        ds.pointBackgroundColor = d.partial.map(function (p, j) { return p || stale[j] ? '#ffffff' : d.color; });
      }
      if (REFERENCE_DASH[d.role]) {
        if (spec.type === 'bar') ds.type = 'line';
        ds.borderDash = REFERENCE_DASH[d.role];
        ds.borderWidth = 1.5;
        ds.pointStyle = 'line';
        ds.pointRadius = multi ? 40 : 0;
        ds.pointHoverRadius = multi ? 40 : 4;
        ds.backgroundColor = 'transparent';
      }
      return ds;
    });
    var canvas = document.getElementById(id);
    return new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      plugins: [labelsPlugin],
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        layout: { padding: { top: 18 } },
        plugins: {
          title: { display: true, text: spec.title, font: { size: 15 } },
          legend: { position: 'bottom' },
          tooltip: {
            callbacks: {
              afterLabel: function (item) {
                var notes = item.dataset.aiosNotes;
                return notes && notes[item.dataIndex] ? notes[item.dataIndex] : '';
              }
            }
          }
        },
        scales: {
          y: {
            type: spec.logarithmic ? 'logarithmic' : 'linear',
            beginAtZero: !spec.logarithmic,
            suggestedMin: spec.suggestedMin,
            suggestedMax: spec.suggestedMax,
            title: { display: true, text: spec.yTitle },
            ticks: {
              callback: function (v) {
                v = Number(v);
                if (spec.logarithmic) {
                  // label 1, 2 and 5 of each decade only
                  var m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
                  if ([1, 2, 5].indexOf(Math.round(m * 100) / 100) < 0) return '';
                }
                return v.toLocaleString('en-US', { maximumFractionDigits: 2 });
              }
            }
          }
        }
      }
    });
  }
  var charts = {
    tokps: build('tokps', specs.tokps),
    copy: build('env-copy', specs.copy),
    gemm: build('env-gemm', specs.gemm),
    overhead: build('env-overhead', specs.overhead)
  };
  specs.kernels.forEach(function (k) {
    charts[k.id + '-prefill'] = build(k.id + '-prefill', k.prefill);
    charts[k.id + '-decode'] = build(k.id + '-decode', k.decode);
  });
  window.__aiosCharts = charts;
  window.__aiosReady = true;
})();
`;

export interface PageOptions {
  /** Shown in the header: where the records came from. */
  sourceLabel?: string;
  chartJs?: { version: string; source: string };
}

export function renderPage(model: ChartModel, opts: PageOptions = {}): string {
  const chartJs = opts.chartJs ?? chartJsSource();
  const specs = chartSpecs(model);
  const payload = JSON.stringify({ specs }).replace(/</g, '\\u003c');
  const tokSection = specs.tokps
    ? `<div class="chart tall"><canvas id="tokps"></canvas></div>
<p class="legend">One line per card and workload (log scale). The label over a point is its multiplier over the same line's previous lesson;
a hollow triangle is a <b>partial run</b> (stopped by its time budget; it covers the requests that finished); a hollow diamond is a <b>stale</b> record
(the lesson's code changed after the record's commit: the table below says which commit changed what); the bar through a point spans the slowest and
fastest of the record's repeated runs (the point is their median); the dashed line is the workload's roofline on that card; a dotted line, labelled
at its left end, is another engine (a peer record: Hugging Face transformers, say) run on the same card, model and workload.</p>`
    : `<p class="empty" id="tokps-empty"><b>No lesson runs recorded yet.</b> A lesson's point appears here once it has run a workload on a GPU and written a
<code>bench</code> record to bench-results/ (<code>pnpm lesson N</code>, lessons 03 and on). Nothing is drawn until then: no number on this page is estimated.</p>`;
  const envSection =
    model.environment.length > 0
      ? `<div class="row"><div class="chart"><canvas id="env-copy"></canvas></div><div class="chart"><canvas id="env-gemm"></canvas></div><div class="chart"><canvas id="env-overhead"></canvas></div></div>
<p class="legend">Lesson 00 on each card: the same operations through our addon and through PyTorch in the same session.</p>`
      : `<p class="empty" id="env-empty"><b>No per-op records yet.</b> <code>pnpm lesson 0</code> on a GPU writes one.</p>`;
  const kernelsSection = model.kernels.length
    ? model.kernels.map((e, i) => kernelSection(e, specs.kernels[i]!)).join('\n')
    : `<p class="legend" id="kernels-empty">No per-kernel records yet: <code>pnpm bench:kernels</code> on a GPU writes one (lesson 09's attention kernels).</p>`;
  const other = Object.entries(model.otherKinds);
  const notes = [
    ...other.map(([kind, n]) => `<li>${n} record(s) of kind <code>${escapeHtml(kind)}</code> are not charted yet.</li>`),
    ...model.skipped.map((s) => `<li>skipped <code>${escapeHtml(s.file)}</code>: ${escapeHtml(s.reason)}</li>`),
    ...model.kernels.flatMap((e) => (e.ignored ?? []).map((why) => `<li>not charted from <code>${escapeHtml(e.file)}</code>: ${escapeHtml(why)}</li>`)),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>AIOS-TS: measured results</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; background: #fff; }
  #charts, #details { max-width: 1180px; margin: 0 auto; padding: 16px 24px; }
  h1 { font-size: 22px; margin: 4px 0; } h2 { font-size: 17px; margin: 18px 0 6px; } h3 { font-size: 14px; margin: 12px 0 4px; }
  .sub, .legend { color: #555; font-size: 13px; }
  .chart { position: relative; height: 300px; flex: 1; min-width: 0; }
  .chart.tall { height: 420px; }
  .row { display: flex; gap: 16px; }
  .empty { border: 1px dashed #999; background: #fafafa; padding: 28px; text-align: center; font-size: 15px; color: #444; }
  table { border-collapse: collapse; font-size: 12px; margin: 8px 0; width: 100%; }
  th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
  td.num { text-align: right; white-space: nowrap; }
  .stale { color: #a40000; } .unknown { color: #7a5a00; } td.error { color: #a40000; }
  .chart + .chart { margin-top: 12px; }
</style>
</head>
<body>
<main id="charts">
<h1>AIOS-TS: measured results</h1>
<p class="sub">${model.recordCount} record(s) from ${escapeHtml(opts.sourceLabel ?? 'bench-results/')}. Every number here comes from one of them (file names below).</p>
<h2>Tokens per second across lessons</h2>
${tokSection}
<h2>Per-op and per-kernel records</h2>
${envSection}
${kernelsSection}
${model.serve.length ? `<h2>Serving (lesson 15): requests at given rates through the HTTP server</h2>${serveTables(model.serve)}` : ''}
</main>
<section id="details">
${model.tok.series.length ? `<h2>Lesson runs</h2>${tokTable(model)}` : ''}
${model.environment.length ? `<h2>Environment (lesson 00)</h2>${envTable(model.environment)}` : ''}
${kernelDetails(model.kernels)}
${notes.length ? `<h2>Notes</h2><ul>${notes.join('')}</ul>` : ''}
<p class="sub">Generated by <code>pnpm chart</code> with Chart.js ${escapeHtml(chartJs.version)} (inlined: this page needs no network).</p>
</section>
<script type="application/json" id="aios-data">${payload}</script>
<script>${scriptSafe(chartJs.source)}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
