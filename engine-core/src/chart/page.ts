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
import type { ChartModel, EnvEntry, TokView } from './data.ts';

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

export function lessonLabel(n: number): string {
  const info = LESSONS.find((l) => l.number === n);
  return `${String(n).padStart(2, '0')} ${info ? info.slug : '(unknown lesson)'}`;
}

// ------------------------------------------------------------ chart specs

export type DatasetRole = 'measured' | 'roofline' | 'ours' | 'baseline';

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
}

export interface ChartSpec {
  type: 'line' | 'bar';
  title: string;
  labels: string[];
  yTitle: string;
  logarithmic: boolean;
  /** Axis range hints (log charts: headroom so no point or roofline sits on the frame). */
  suggestedMin?: number;
  suggestedMax?: number;
  datasets: DatasetSpec[];
}

export interface PageSpecs {
  /** Null when no lesson run is recorded: the page says so instead of drawing an empty chart. */
  tokps: ChartSpec | null;
  copy: ChartSpec | null;
  gemm: ChartSpec | null;
  overhead: ChartSpec | null;
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

export function chartSpecs(model: ChartModel): PageSpecs {
  return { tokps: tokChartSpec(model.tok), ...environmentSpecs(model.environment) };
}

// ------------------------------------------------------------ HTML

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
          `<td><code>${escapeHtml(p.file)}</code></td><td><code>${escapeHtml(p.commit)}</code></td>` +
          `<td class="${p.freshness?.state ?? 'unchecked'}">${p.freshness ? escapeHtml(describeFreshness(p.freshness)) : 'not checked'}</td></tr>`,
      );
    }
  return `<table><thead><tr><th>card · workload</th><th>lesson</th><th>output tok/s</th><th>over previous</th><th>run</th><th>runs: slowest to fastest (spread)</th><th>roofline tok/s</th><th>record</th><th>commit</th><th>still true of the code?</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
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

const PAGE_SCRIPT = String.raw`
(function () {
  var data = JSON.parse(document.getElementById('aios-data').textContent);
  var specs = data.specs;
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
      function free(b) {
        if (b.x < area.left - 40 || b.x + b.w > chart.width || b.y < 0 || b.y + b.h > chart.height) return false;
        for (var k = 0; k < placed.length; k++) {
          var p = placed[k];
          if (b.x < p.x + p.w && p.x < b.x + b.w && b.y < p.y + p.h && p.y < b.y + b.h) return false;
        }
        return true;
      }
      function place(text, color, candidates) {
        var w = ctx.measureText(text).width + 2;
        var box = null;
        for (var c = 0; c < candidates.length && !box; c++) {
          var b = { text: text, x: candidates[c].align === 'right' ? candidates[c].x - w : candidates[c].x - w / 2, y: candidates[c].y, w: w, h: H };
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
          if (ds.aiosRole === 'roofline') { rooflines.push({ text: text, color: ds.borderColor, y: el.y }); return; }
          var gap = ds.aiosRole === 'measured' ? 9 : 3;
          var cands = [];
          for (var step = 0; step < 6; step++) {
            cands.push({ x: el.x, y: el.y - gap - H - step * H });
            if (ds.aiosRole === 'measured') cands.push({ x: el.x, y: el.y + gap + step * H });
          }
          place(text, ds.borderColor, cands);
        });
      });
      // Roofline labels at the right end of their lines, inside the plot.
      rooflines.sort(function (a, b) { return a.y - b.y; });
      rooflines.forEach(function (l) {
        var cands = [];
        for (var step = 0; step < 8; step++) cands.push({ x: area.right - 4, y: l.y - 3 - H + step * H, align: 'right' });
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
        aiosPointLabels: d.pointLabels || null, aiosNotes: d.notes || null
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
      if (d.role === 'roofline') {
        ds.borderDash = [6, 4];
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
  window.__aiosCharts = {
    tokps: build('tokps', specs.tokps),
    copy: build('env-copy', specs.copy),
    gemm: build('env-gemm', specs.gemm),
    overhead: build('env-overhead', specs.overhead)
  };
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
fastest of the record's repeated runs (the point is their median); the dashed line is the workload's roofline on that card.</p>`
    : `<p class="empty" id="tokps-empty"><b>No lesson runs recorded yet.</b> A lesson's point appears here once it has run a workload on a GPU and written a
<code>bench</code> record to bench-results/ (<code>pnpm lesson N</code>, lessons 03 and on). Nothing is drawn until then: no number on this page is estimated.</p>`;
  const envSection =
    model.environment.length > 0
      ? `<div class="row"><div class="chart"><canvas id="env-copy"></canvas></div><div class="chart"><canvas id="env-gemm"></canvas></div><div class="chart"><canvas id="env-overhead"></canvas></div></div>
<p class="legend">Lesson 00 on each card: the same operations through our addon and through PyTorch in the same session. Per-kernel records (lesson 09's attention kernels) join this view when they are recorded.</p>`
      : `<p class="empty" id="env-empty"><b>No per-op records yet.</b> <code>pnpm lesson 0</code> on a GPU writes one.</p>`;
  const other = Object.entries(model.otherKinds);
  const notes = [
    ...other.map(([kind, n]) => `<li>${n} record(s) of kind <code>${escapeHtml(kind)}</code> are not charted yet.</li>`),
    ...model.skipped.map((s) => `<li>skipped <code>${escapeHtml(s.file)}</code>: ${escapeHtml(s.reason)}</li>`),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>AIOS-TS: measured results</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; background: #fff; }
  #charts, #details { max-width: 1180px; margin: 0 auto; padding: 16px 24px; }
  h1 { font-size: 22px; margin: 4px 0; } h2 { font-size: 17px; margin: 18px 0 6px; }
  .sub, .legend { color: #555; font-size: 13px; }
  .chart { position: relative; height: 300px; flex: 1; min-width: 0; }
  .chart.tall { height: 420px; }
  .row { display: flex; gap: 16px; }
  .empty { border: 1px dashed #999; background: #fafafa; padding: 28px; text-align: center; font-size: 15px; color: #444; }
  table { border-collapse: collapse; font-size: 12px; margin: 8px 0; width: 100%; }
  th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
  td.num { text-align: right; white-space: nowrap; }
  .stale { color: #a40000; } .unknown { color: #7a5a00; }
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
</main>
<section id="details">
${model.tok.series.length ? `<h2>Lesson runs</h2>${tokTable(model)}` : ''}
${model.environment.length ? `<h2>Environment (lesson 00)</h2>${envTable(model.environment)}` : ''}
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
