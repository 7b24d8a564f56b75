// The chart's data shaping, the page and the README course map, on the CPU.
// Lesson runs come from fixture records in temp folders; the environment view
// and the README check use the committed records.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { REPO_ROOT } from '../src/bench/records.ts';
import {
  COURSE_MAP_END,
  COURSE_MAP_START,
  REFERENCE_CARD,
  courseMapSection,
  currentCourseMap,
  environmentSection,
  regenerateReadme,
  replaceCourseMap,
} from '../src/chart/coursemap.ts';
import {
  type FreshnessOf,
  benchRuns,
  buildChartModel,
  buildTokSeries,
  environmentEntries,
  gitFreshness,
  kernelEntries,
  loadRecords,
  recordProblem,
  selectLatest,
} from '../src/chart/data.ts';
import { chartSpecs, fmt, fmtBytes, fmtFlops, fmtMs, fmtMultiplier, fmtPct, kernelSpecs, renderPage, tokChartSpec } from '../src/chart/page.ts';
import { PAGE_HASH_KEY, readPngText, sha256, writePngText } from '../src/chart/png-stamp.ts';
import { LESSONS } from '../src/cli/lessons.ts';
import { benchRecord, COMMITTED_RESULTS, copyEnvironmentRecords, kernelRecord, peerRecord, standardFixture, tempDir, writeFixtures } from './chart-fixtures.ts';

const H100 = 'NVIDIA H100 80GB HBM3';

/** The latest full lesson-00 record on the reference card among the committed ones (what the chart and README show). */
function committedEnvironment(): Record<string, unknown> & { results: any; date: string } {
  const recs = readdirSync(COMMITTED_RESULTS)
    .filter((f) => f.includes('_lesson00_environment_'))
    .map((f) => JSON.parse(readFileSync(path.join(COMMITTED_RESULTS, f), 'utf8')))
    .filter((r) => r.hardware.card === REFERENCE_CARD && r.settings.quick === false)
    .sort((a, b) => Date.parse(a.date) - Date.parse(b.date));
  if (!recs.length) throw new Error(`no committed lesson-00 environment record on the ${REFERENCE_CARD}`);
  return recs.at(-1);
}

describe('loadRecords', () => {
  it('reads every .json file as a record, ignores other files and reports broken ones', () => {
    const bad = { ...benchRecord({ lesson: 3, tok: 10 }), schema: 2 };
    const noTok = benchRecord({ lesson: 4, tok: 10 }) as any;
    noTok.results.outputTokPerS = 0;
    const dir = writeFixtures([benchRecord({ lesson: 3, tok: 10 }), bad, noTok], {
      'README.md': '# not a record',
      'index.html': '<html></html>',
      'chart.png': 'PNG',
      'zz_broken.json': '{ "schema": 1,',
    });
    const { records, skipped } = loadRecords(dir);
    expect(records.map((r) => r.file)).toEqual(['000_fixture.json']);
    expect(skipped.map((s) => s.file)).toEqual(['001_fixture.json', '002_fixture.json', 'zz_broken.json']);
    expect(skipped[0]!.reason).toMatch(/schema is 2/);
    expect(skipped[1]!.reason).toMatch(/outputTokPerS/);
    expect(skipped[2]!.reason).toMatch(/invalid JSON/);
  });

  it('returns nothing for a folder that does not exist', () => {
    expect(loadRecords(path.join(tempDir(), 'missing'))).toEqual({ records: [], skipped: [] });
  });

  it('accepts the committed records as they are', () => {
    const { records, skipped } = loadRecords(COMMITTED_RESULTS);
    expect(skipped).toEqual([]);
    expect(records.length).toBeGreaterThan(0);
    expect(records.some((r) => r.record.kind === 'environment' && r.record.lesson === 0)).toBe(true);
  });

  it('names the problem of a malformed record', () => {
    expect(recordProblem([])).toBe('not a JSON object');
    expect(recordProblem({ ...benchRecord({ lesson: 3, tok: 1 }), workload: '' })).toMatch(/workload/);
    expect(recordProblem({ ...benchRecord({ lesson: 3, tok: 1 }), partial: 'yes' })).toMatch(/partial/);
    expect(recordProblem({ ...benchRecord({ lesson: 3, tok: 1 }), roofline: { outputTokPerS: -1, basis: '' } })).toMatch(/roofline/);
    expect(recordProblem({ ...benchRecord({ lesson: 3, tok: 1 }), date: 'yesterday' })).toMatch(/date/);
    expect(recordProblem(benchRecord({ lesson: 3, tok: 1 }))).toBeUndefined();
  });
});

describe('selectLatest', () => {
  const load = (records: object[]) => benchRuns(loadRecords(writeFixtures(records)).records);

  it('keeps the latest complete run of a lesson over an older complete one and a newer partial one', () => {
    const runs = load([
      benchRecord({ lesson: 3, tok: 100, date: '2030-01-01T00:00:00Z' }),
      benchRecord({ lesson: 3, tok: 120, date: '2030-01-02T00:00:00Z' }),
      benchRecord({ lesson: 3, tok: 500, partial: true, date: '2030-01-03T00:00:00Z' }),
    ]);
    const sel = selectLatest(runs);
    expect(sel).toHaveLength(1);
    expect(sel[0]!.record.results.outputTokPerS).toBe(120);
  });

  it('prefers an older complete run to a newer partial one whatever the file order', () => {
    const runs = load([
      benchRecord({ lesson: 3, tok: 500, partial: true, date: '2030-01-03T00:00:00Z' }),
      benchRecord({ lesson: 3, tok: 100, date: '2030-01-01T00:00:00Z' }),
    ]);
    expect(selectLatest(runs).map((r) => [r.record.results.outputTokPerS, r.record.partial])).toEqual([[100, false]]);
  });

  it('falls back to the latest partial run when no run of the lesson finished', () => {
    const runs = load([
      benchRecord({ lesson: 4, tok: 50, partial: true, date: '2030-01-05T00:00:00Z' }),
      benchRecord({ lesson: 4, tok: 70, partial: true, date: '2030-01-06T00:00:00Z' }),
    ]);
    const sel = selectLatest(runs);
    expect(sel.map((r) => [r.record.results.outputTokPerS, r.record.partial])).toEqual([[70, true]]);
  });

  it('keeps one run per card, workload, model and lesson', () => {
    const sel = selectLatest(load(standardFixture()));
    expect(sel).toHaveLength(6);
    expect(sel.map((r) => r.record.lesson)).toEqual([3, 3, 4, 4, 6, 6]);
  });
});

describe('buildTokSeries', () => {
  const view = () => buildTokSeries(benchRuns(loadRecords(writeFixtures(standardFixture())).records));

  it('makes one series per card and workload, on the lessons that have runs', () => {
    const v = view();
    expect(v.lessons).toEqual([3, 4, 6]);
    expect(v.series.map((s) => s.label)).toEqual([`${H100} · course`, 'NVIDIA H200 · course', 'NVIDIA H200 · throughput']);
  });

  it('aligns points on the lessons, with gaps as null', () => {
    const [h100, h200, thr] = view().series;
    expect(h100!.points.map((p) => p?.tokPerS ?? null)).toEqual([80, 200, null]);
    expect(h200!.points.map((p) => p?.tokPerS ?? null)).toEqual([100, 450, 9000]);
    expect(thr!.points.map((p) => p?.tokPerS ?? null)).toEqual([null, null, 20000]);
  });

  it('measures each multiplier against the same series\' previous recorded lesson', () => {
    const [h100, h200, thr] = view().series;
    expect(h200!.points.map((p) => p?.multiplier ?? null)).toEqual([null, 4.5, 20]);
    expect(h200!.points.map((p) => p?.prevLesson ?? null)).toEqual([null, 3, 4]); // lesson 5 has no run: 06 is compared with 04
    expect(h100!.points[1]!.multiplier).toBeCloseTo(2.5, 12);
    expect(thr!.points[2]!.multiplier).toBeUndefined(); // the first run of its series
  });

  it('marks partial runs', () => {
    const [, h200] = view().series;
    expect(h200!.points.map((p) => p?.partial)).toEqual([false, true, false]);
  });

  it('takes the roofline from the latest run that carries one, and none where no run does', () => {
    const [h100, h200] = view().series;
    expect(h200!.roofline).toMatchObject({ tokPerS: 42000, basis: 'fixture roofline' });
    expect(h100!.roofline).toBeUndefined();
  });

  it('names the model only where one card and workload carry several', () => {
    const runs = benchRuns(
      loadRecords(writeFixtures([benchRecord({ lesson: 3, tok: 10 }), benchRecord({ lesson: 3, tok: 5, model: 'qwen3-8b' })])).records,
    );
    expect(buildTokSeries(runs).series.map((s) => s.label)).toEqual(['NVIDIA H200 · course · qwen3-0.6b-random', 'NVIDIA H200 · course · qwen3-8b']);
  });

  it('is empty when there are no bench records', () => {
    expect(buildTokSeries([])).toEqual({ lessons: [], series: [] });
  });

  it("attaches other engines' runs to the series of their card, workload and model: the newest of each library and mode", () => {
    const loaded = loadRecords(
      writeFixtures([
        ...standardFixture(),
        peerRecord({ mode: 'generate', tok: 700 }),
        peerRecord({ mode: 'generate_batch', tok: 3000, date: '2030-01-02T00:00:00.000Z' }),
        peerRecord({ mode: 'generate_batch', tok: 2500, date: '2030-01-03T00:00:00.000Z', version: '5.0.0' }), // newer: replaces the 3000
        peerRecord({ mode: 'generate', tok: 900, model: 'qwen3-8b' }), // another model: no series of it
        peerRecord({ mode: 'generate', tok: 800, workload: 'throughput' }),
      ]),
    );
    expect(loaded.skipped).toEqual([]);
    const model = buildChartModel(loaded);
    const [h100, h200, thr] = model.tok.series;
    expect(h100!.peers).toBeUndefined();
    expect(h200!.peers!.map((p) => [p.label, p.tokPerS])).toEqual([
      ['transformers 5.0.0 generate_batch', 2500],
      ['transformers 4.99.0 generate', 700],
    ]);
    expect(thr!.peers!.map((p) => p.tokPerS)).toEqual([800]);
    expect(model.otherKinds).toEqual({});
    // Drawn as flat lines of their series' colour, labelled at the left end, never as a lesson's point.
    const spec = tokChartSpec(model.tok)!;
    const peers = spec.datasets.filter((d) => d.role === 'peer');
    expect(peers.map((d) => d.label)).toEqual([
      'NVIDIA H200 · course: transformers 5.0.0 generate_batch',
      'NVIDIA H200 · course: transformers 4.99.0 generate',
      'NVIDIA H200 · throughput: transformers 4.99.0 generate',
    ]);
    expect(peers[0]!.data).toEqual(model.tok.lessons.map(() => 2500));
    expect(peers[0]!.pointLabels![0]).toBe('transformers 5.0.0 generate_batch 2,500');
    expect(spec.datasets.filter((d) => d.role === 'measured')).toHaveLength(3);
  });

  it('prefers a complete peer run to a newer partial one, as the lessons\' points do', () => {
    const partial = { ...peerRecord({ mode: 'generate_batch', tok: 50, date: '2030-01-05T00:00:00.000Z' }), partial: true };
    const model = buildChartModel(loadRecords(writeFixtures([...standardFixture(), peerRecord({ mode: 'generate_batch', tok: 3000 }), partial])));
    expect(model.tok.series[1]!.peers!.map((p) => p.tokPerS)).toEqual([3000]);
  });

  it('reports a peer record without its library, mode or rate as skipped, with the reason', () => {
    const bad = { ...peerRecord({ mode: 'generate', tok: 1 }), peer: { library: 'transformers' } };
    const zero = peerRecord({ mode: 'generate', tok: 1 });
    zero.results.outputTokPerS = 0;
    const { skipped } = loadRecords(writeFixtures([bad, zero]));
    expect(skipped.map((s) => s.reason)).toEqual(['peer record without peer.library and peer.mode', 'results.outputTokPerS is 0, expected a positive number']);
  });
});

describe('tok/s chart spec', () => {
  it('has a measured dataset per series and a flat roofline dataset where known', () => {
    const model = buildChartModel(loadRecords(writeFixtures(standardFixture())));
    const spec = tokChartSpec(model.tok)!;
    expect(spec.logarithmic).toBe(true);
    expect(spec.labels).toEqual(['03 baseline-engine', '04 kv-cache', '06 paged-kv-cache']);
    expect(spec.datasets.map((d) => [d.label, d.role])).toEqual([
      [`${H100} · course`, 'measured'],
      ['NVIDIA H200 · course', 'measured'],
      ['NVIDIA H200 · course: roofline', 'roofline'],
      ['NVIDIA H200 · throughput', 'measured'],
    ]);
    const h200 = spec.datasets[1]!;
    expect(h200.data).toEqual([100, 450, 9000]);
    expect(h200.partial).toEqual([false, true, false]);
    expect(h200.pointLabels).toEqual([null, '×4.50', '×20.0']);
    expect(h200.notes![1]).toMatch(/partial run/);
    expect(spec.datasets[2]!.data).toEqual([42000, 42000, 42000]);
    expect(spec.datasets[2]!.color).toBe(h200.color);
    expect(spec.datasets[2]!.pointLabels).toEqual([null, null, 'roofline 42,000']);
    expect(spec.suggestedMin).toBeLessThan(80);
    expect(spec.suggestedMax).toBeGreaterThan(42000);
  });

  it('is null when no lesson run is recorded', () => {
    expect(tokChartSpec({ lessons: [], series: [] })).toBeNull();
  });
});

describe('environment view (lesson 00)', () => {
  it('takes copy bandwidth, GEMM rate, op overhead and the PyTorch baseline from the committed record', () => {
    const rec = committedEnvironment();
    const { entries, skipped } = environmentEntries(loadRecords(COMMITTED_RESULTS).records);
    expect(skipped).toEqual([]);
    const e = entries.find((x) => x.card === (rec.hardware as { card: string }).card)!;
    expect(e.copy.gbPerS).toBe(rec.results.copy.gbPerS);
    expect(e.gemm.tflops).toBe(rec.results.gemm.tflops);
    expect(e.gemm.dtype).toBe(rec.results.gemm.dtype);
    expect(e.overhead.facadeUs).toBe(rec.results.overhead.facadeUs);
    expect(e.overhead.bindingUs).toBe(rec.results.overhead.bindingUs);
    expect(e.baseline?.gemmTflops).toBe(rec.results.baseline.gemm.tflops);
    expect(e.baseline?.copyGbPerS).toBe(rec.results.baseline.copy.gbPerS);
    expect(e.baseline?.addOverheadUs).toBe(rec.results.baseline.addOverheadUs);

    const specs = chartSpecs(buildChartModel(loadRecords(COMMITTED_RESULTS)));
    expect(specs.copy!.datasets.map((d) => d.role)).toEqual(['ours', 'baseline']);
    expect(specs.copy!.datasets[0]!.data).toContain(rec.results.copy.gbPerS);
    expect(specs.gemm!.datasets[1]!.data).toContain(rec.results.baseline.gemm.tflops);
    const optional = ['deviceUs', 'cudaLaunchUs'].filter((k) => rec.results.overhead[k] !== undefined).length;
    expect(specs.overhead!.datasets.map((d) => d.role)).toEqual([...Array(2 + optional).fill('ours'), 'baseline']);
    expect(specs.overhead!.datasets[0]!.data).toContain(rec.results.overhead.facadeUs);
  });

  it('prefers a full run over a newer --quick one, per card, and reports records missing numbers', () => {
    const rec = committedEnvironment();
    const quick = { ...rec, date: '2099-01-01T00:00:00Z', settings: { ...(rec.settings as object), quick: true } };
    const broken = { ...rec, hardware: { ...(rec.hardware as object), card: 'Other GPU' }, results: { copy: {} } };
    const { entries, skipped } = environmentEntries(loadRecords(writeFixtures([rec, quick, broken])).records);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.quick).toBe(false);
    expect(entries[0]!.file).toBe('000_fixture.json');
    expect(skipped).toEqual([{ file: '002_fixture.json', reason: 'results.copy.gbPerS/bytes missing' }]);
  });
});

describe('kernel view (lesson 09 on)', () => {
  /** The committed kernel records, parsed (bench-results/*_kernel_*.json). */
  const committedKernels = () =>
    readdirSync(COMMITTED_RESULTS)
      .filter((f) => f.endsWith('.json') && f.includes('_kernel_'))
      .map((f) => ({ file: f, json: JSON.parse(readFileSync(path.join(COMMITTED_RESULTS, f), 'utf8')) }));

  it('reads shapes, versions, the peer and the copy ceiling from a fixture record, as measured', () => {
    const { entries, skipped } = kernelEntries(loadRecords(writeFixtures([kernelRecord()])).records);
    expect(skipped).toEqual([]);
    expect(entries).toHaveLength(1);
    const e = entries[0]!;
    expect([e.card, e.family, e.lesson, e.file, e.commit, e.dtype, e.quick, e.partial]).toEqual(['NVIDIA H200', 'flash-attention', 9, '000_fixture.json', 'fixturekernel', 'bf16', false, undefined]);
    expect(e.prefill.map((s) => s.name)).toEqual(['prefill 0.6B 8x2048', 'prefill 0.6B 1x16384']);
    expect(e.decode.map((s) => s.name)).toEqual(['decode 0.6B batch 1 ctx 1024', 'decode 0.6B batch 64 ctx 4096']);
    // Prefill rates are the record's tflops, decode rates its gbPerS; nothing is recomputed.
    expect(e.prefill[0]!.versions.map((v) => [v.version, v.medianMs, v.rate])).toEqual([['lesson08', 19.4, 7], ['v1', 14.9, 9], ['v2', 1.14, 120]]);
    expect(e.decode[1]!.versions.map((v) => v.rate)).toEqual([2000, 1450, 1445, 3300]);
    expect(e.prefill[0]!.peer).toMatchObject({ version: 'torch-sdpa-flash', medianMs: 0.52, rate: 250, note: 'enable_gqa=True' });
    expect(e.decode[0]!.peer!.rate).toBe(51);
    // The shape without a peer has none; the failed version keeps its error and no numbers (NaN was written as null).
    expect(e.prefill[1]!.peer).toBeUndefined();
    expect(e.prefill[1]!.versions[2]).toEqual({ version: 'v2', repeats: 0, callsPerRepeat: 0, error: 'too many <blocks>' });
    expect(e.copy).toEqual({ gbPerS: 4000, peerGbPerS: 4190, lesson00GbPerS: 4177, lesson00Record: 'lesson00.json' });
    expect(e.peer).toEqual({ library: 'torch.nn.functional.scaled_dot_product_attention (flash backend)', version: '2.11.0', note: 'sdpa_kernel(FLASH_ATTENTION)' });
  });

  it('draws a prefill chart (TFLOP/s, each version and SDPA) and a decode chart (GB/s, with the copy line), leaving gaps where nothing was measured', () => {
    const [spec] = kernelSpecs(kernelEntries(loadRecords(writeFixtures([kernelRecord()])).records).entries);
    const prefill = spec!.prefill!, decode = spec!.decode!;
    expect(spec!.id).toBe('kernel-0');
    expect(prefill.type).toBe('bar');
    expect(prefill.logarithmic).toBe(true);
    expect(prefill.labels).toEqual([['0.6B (16/8 heads)', '8 × 2,048 tokens'], ['0.6B (16/8 heads)', '1 × 16,384 tokens']]);
    expect(prefill.datasets.map((d) => [d.label, d.role, d.data])).toEqual([
      ["lessons 07-08's kernel (pagedAttention)", 'ours', [7, 7.5]],
      ['lesson 09 v1', 'ours', [9, 9.5]],
      ['lesson 09 v2', 'ours', [120, null]], // failed on the second shape: no bar
      ['PyTorch SDPA (flash backend) 2.11.0, same call', 'baseline', [250, null]], // no peer on the second shape
    ]);
    expect(prefill.datasets[2]!.pointLabels).toEqual(['120', null]);
    expect(prefill.datasets[2]!.notes![0]).toMatch(/^prefill 0\.6B 8x2048: median 1\.14 ms; .*; 48% of SDPA$/);
    expect(prefill.datasets[2]!.notes![1]).toContain('error: too many <blocks>');
    expect(prefill.suggestedMin!).toBeLessThan(7);
    expect(prefill.suggestedMax!).toBeGreaterThan(250);

    expect(decode.labels).toEqual([['0.6B', 'batch 1', 'ctx 1k'], ['0.6B', 'batch 64', 'ctx 4k']]);
    expect(decode.yTitle).toBe('K/V GB/s (log scale)');
    expect(decode.datasets.map((d) => [d.label, d.role, d.data])).toEqual([
      ["lessons 07-08's kernel (pagedAttention)", 'ours', [35, 2000]],
      ['lesson 09 v1', 'ours', [46, 1450]],
      ['lesson 09 v2', 'ours', [130, 1445]],
      ['lesson 09 v3', 'ours', [null, 3300]],
      ['PyTorch SDPA (flash backend) 2.11.0, same call', 'baseline', [51, 2400]],
      ['device copy, read + write (same call)', 'roofline', [4000, 4000]],
    ]);
    // The newest version's bars carry their share of the copy bandwidth; the other bars carry none.
    expect(decode.datasets[3]!.pointLabels).toEqual([null, '83%']);
    expect(decode.datasets.slice(0, 3).every((d) => d.pointLabels!.every((l) => l === null))).toBe(true);
    expect(decode.datasets[5]!.pointLabels).toEqual(['device copy 4,000 GB/s (same call)', null]);
    expect(decode.datasets[5]!.labelAt).toBe('start');
    expect(decode.suggestedMax!).toBeGreaterThan(4000);
  });

  it('keeps the latest record per card and family: complete over partial, full over --quick, then the newest', () => {
    const records = [
      kernelRecord({ date: '2030-01-01T00:00:00Z', scale: 1 }),
      kernelRecord({ date: '2030-01-02T00:00:00Z', scale: 2 }),
      kernelRecord({ date: '2030-01-03T00:00:00Z', scale: 3, quick: true }),
      kernelRecord({ date: '2030-01-04T00:00:00Z', scale: 4, partial: '2 of 20 shapes so far' }),
      kernelRecord({ date: '2030-01-01T00:00:00Z', scale: 5, card: 'NVIDIA H100 80GB HBM3' }),
      kernelRecord({ date: '2030-01-01T00:00:00Z', scale: 6, family: 'gemm' }),
    ];
    const { entries } = kernelEntries(loadRecords(writeFixtures(records)).records);
    expect(entries.map((e) => [e.card, e.family, e.prefill[0]!.versions[0]!.rate])).toEqual([
      [H100, 'flash-attention', 35],
      ['NVIDIA H200', 'flash-attention', 14],
      ['NVIDIA H200', 'gemm', 42],
    ]);
    // Only a partial run: it is shown, and the page says so.
    const only = kernelEntries(loadRecords(writeFixtures([records[3]!])).records).entries;
    expect(only[0]!.partial).toBe('2 of 20 shapes so far');
    expect(renderPage(buildChartModel(loadRecords(writeFixtures([records[3]!]))))).toContain('<b>partial run</b> (2 of 20 shapes so far)');
  });

  it('lists a record it cannot chart, and a shape it cannot read, instead of dropping them silently', () => {
    const empty = { ...kernelRecord(), results: { shapes: [], ceilings: {} } };
    const odd = kernelRecord();
    (odd.results.shapes[1] as unknown as Record<string, unknown>).flops = 'many';
    const model = buildChartModel(loadRecords(writeFixtures([empty, odd])));
    expect(model.skipped).toEqual([{ file: '000_fixture.json', reason: 'no shape with a measured rate (results.shapes[].versions[].tflops or gbPerS)' }]);
    expect(model.kernels[0]!.prefill.map((s) => s.name)).toEqual(['prefill 0.6B 8x2048']);
    expect(model.kernels[0]!.ignored).toEqual(['shape "prefill 0.6B 1x16384": flops missing']);
    const html = renderPage(model);
    expect(html).toContain('not charted from <code>001_fixture.json</code>: shape &quot;prefill 0.6B 1x16384&quot;: flops missing');
  });

  it('carries the freshness it is given', () => {
    const stale: FreshnessOf = (r) => ({ state: 'stale', commit: r.commit, dirty: false, since: 'abc1234', changed: ['native/src/cuda/flash_decode.cu'] });
    const model = buildChartModel(loadRecords(writeFixtures([kernelRecord()])), stale);
    expect(model.kernels[0]!.freshness).toMatchObject({ state: 'stale', since: 'abc1234' });
    expect(renderPage(model)).toContain('<span class="stale">stale: commit abc1234 changed native/src/cuda/flash_decode.cu after the record&#39;s commit fixturekernel</span>'.replace('&#39;', "'"));
  });

  it('takes the committed H200 record as it is: every shape, every measured rate, the copy of the same call', () => {
    const committed = committedKernels();
    expect(committed.length).toBeGreaterThan(0);
    const { entries, skipped } = kernelEntries(loadRecords(COMMITTED_RESULTS).records);
    expect(skipped).toEqual([]);
    for (const { file, json } of committed) {
      // Entries that chart this record: one per phase it is the latest for (none if newer records measured both).
      for (const e of entries.filter((x) => x.card === json.hardware.card && x.family === json.family && x.file === file)) {
        const shapes = (json.results.shapes as { name: string; phase: string; versions: { version: string; tflops?: number; gbPerS?: number }[]; peer?: { tflops?: number; gbPerS?: number } }[])
          .filter((s) => (s.phase === 'prefill' ? e.prefill.length > 0 : e.decode.length > 0));
        expect([...e.prefill, ...e.decode].map((s) => s.name).sort()).toEqual(shapes.map((s) => s.name).sort());
        for (const s of shapes) {
          const got = [...e.prefill, ...e.decode].find((x) => x.name === s.name)!;
          const key = s.phase === 'prefill' ? 'tflops' : 'gbPerS';
          expect(got.versions.map((v) => [v.version, v.rate])).toEqual(s.versions.map((v) => [v.version, v[key]]));
          expect(got.peer?.rate).toBe(s.peer?.[key]);
        }
        expect(e.copy.gbPerS).toBe(json.results.ceilings.copyGbPerS);
      }
    }
    const h200 = entries.filter((e) => e.card === 'NVIDIA H200' && e.family === 'flash-attention');
    const pre = h200.find((e) => e.prefill.length > 0), dec = h200.find((e) => e.decode.length > 0);
    if (pre && dec) {
      expect(pre.prefill.length).toBe(4);
      expect(dec.decode.length).toBe(16);
      const html = renderPage(buildChartModel(loadRecords(COMMITTED_RESULTS)));
      expect(html).toContain(`id="kernel-${entries.indexOf(pre)}-prefill"`);
      expect(html).toContain(`id="kernel-${entries.indexOf(dec)}-decode"`);
      for (const e of [pre, dec]) {
        expect(html).toContain(e.file);
        expect(html).toContain(e.commit);
      }
      // The tables: the newest prefill version's share of SDPA on the 0.6B 8x2048 shape, v3's share of the copy at batch 256 ctx 4096, as the records give them.
      const p = pre.prefill.find((s) => s.name === 'prefill 0.6B 8x2048')!;
      const newest = p.versions[p.versions.length - 1]!;
      expect(html).toContain(`${fmtPct((100 * newest.rate!) / p.peer!.rate!)} of SDPA`);
      const d = dec.decode.find((s) => s.name === 'decode 0.6B batch 256 ctx 4096')!;
      expect(html).toContain(`${fmtPct((100 * d.versions.find((v) => v.version === 'v3')!.rate!) / dec.copy.gbPerS!)} of copy`);
    }
  });

  it('is absent when there is no kernel record, and the notes no longer call kernel records uncharted', () => {
    const none = buildChartModel(loadRecords(writeFixtures(standardFixture())));
    expect(none.kernels).toEqual([]);
    expect(chartSpecs(none).kernels).toEqual([]);
    const html = renderPage(none);
    expect(html).not.toMatch(/id="kernel-\d+-(prefill|decode)"/);
    expect(html).toContain('id="kernels-empty"');
    expect(html).not.toContain('<h2>Kernels');

    const withKernel = renderPage(buildChartModel(loadRecords(writeFixtures([kernelRecord(), { ...kernelRecord(), kind: 'profile' }]))));
    expect(withKernel).toContain('id="kernel-0-prefill"');
    expect(withKernel).not.toContain('id="kernels-empty"');
    expect(withKernel).not.toContain('of kind <code>kernel</code>');
    expect(withKernel).toContain('1 record(s) of kind <code>profile</code> are not charted yet.');
    const committed = renderPage(buildChartModel(loadRecords(COMMITTED_RESULTS)));
    expect(committed).not.toMatch(/kind <code>kernel<\/code> are not charted/);
  });

  it('keeps record text from breaking out of the page', () => {
    const evil = kernelRecord({ card: '</script><img src=x onerror=alert(1)>', family: '<b>fam</b>' });
    evil.results.shapes[0]!.versions[0]!.version = '<i>v</i>';
    const html = renderPage(buildChartModel(loadRecords(writeFixtures([evil]))));
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<b>fam</b>');
    expect(html).not.toContain('<i>v</i>');
    expect(html).toContain('error: too many &lt;blocks&gt;');
    expect(html.match(/<\/script>/g)).toHaveLength(3);
  });

  it('formats times, shares, bytes and FLOPs as the tables print them', () => {
    expect([fmtMs(0.020685), fmtMs(0.93557), fmtMs(19.405), fmtMs(152.26), fmtMs(1234.5)]).toEqual(['0.0207', '0.936', '19.4', '152', '1,235']);
    expect([fmtPct(56.04), fmtPct(4.87)]).toEqual(['56%', '4.9%']);
    expect([fmtBytes(4194304), fmtBytes(1073741824), fmtBytes(1.5 * 2 ** 30)]).toEqual(['4 MiB', '1 GiB', '1.5 GiB']);
    expect([fmtFlops(137506062336), fmtFlops(1099578736640)]).toEqual(['138 GFLOP', '1.10 TFLOP']);
  });
});

describe('the page', () => {
  it('with the committed records: charts every recorded series (or says there are none) and lesson 00', () => {
    const { records } = loadRecords(COMMITTED_RESULTS);
    const model = buildChartModel(loadRecords(COMMITTED_RESULTS));
    const html = renderPage(model);
    const lessonRuns = records.filter((r) => r.record.kind === 'bench');
    expect(model.tok.series.length > 0).toBe(lessonRuns.length > 0);
    if (lessonRuns.length === 0) {
      expect(html).toContain('No lesson runs recorded yet');
      expect(html).not.toContain('id="tokps"');
    } else {
      expect(html).toContain('id="tokps"');
      for (const s of model.tok.series) expect(html).toContain(JSON.stringify(s.label).slice(1, -1));
    }
    expect(html).toContain('id="env-copy"');
  });

  it('inlines Chart.js and loads nothing from the network', () => {
    const html = renderPage(buildChartModel(loadRecords(writeFixtures(standardFixture()))));
    expect(html).toContain('Chart.js v4.6.1');
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link[^>]+href=/i);
    expect(html).toContain('id="tokps"');
    expect(html).toContain('<b>partial</b>');
  });

  it('keeps record text from breaking out of the page', () => {
    const evil = benchRecord({ lesson: 3, tok: 10, card: '</script><img src=x onerror=alert(1)>' });
    const html = renderPage(buildChartModel(loadRecords(writeFixtures([evil]))));
    expect(html).not.toContain('<img src=x');
    expect(html.match(/<\/script>/g)).toHaveLength(3); // data, Chart.js, page script
  });

  it('formats numbers and multipliers as the README and chart print them', () => {
    expect(fmt(4206.002)).toBe('4,206');
    expect(fmt(98.55)).toBe('98.6');
    expect(fmt(4.7951)).toBe('4.80');
    expect(fmtMultiplier(4.5)).toBe('×4.50');
    expect(fmtMultiplier(19.96)).toBe('×20.0');
  });
});

describe('README course map', () => {
  it('lists every lesson, quotes the reference card only, and marks partial and missing runs', () => {
    const records = loadRecords(writeFixtures(standardFixture())).records;
    const section = courseMapSection(LESSONS, records, { referenceCard: 'NVIDIA H200', recordsLink: 'r/' });
    const rows = section.split('\n').filter((l) => /^\| \d\d \|/.test(l));
    expect(rows).toHaveLength(LESSONS.length);
    const row = (n: number) => rows.find((r) => r.startsWith(`| ${String(n).padStart(2, '0')} |`))!;
    expect(row(3)).toContain('[100 tok/s](r/000_fixture.json)');
    expect(row(4)).toContain('[450 tok/s](r/001_fixture.json), ×4.50 over 03 (partial run)');
    expect(row(6)).toContain('[9,000 tok/s](r/002_fixture.json), ×20.0 over 04'); // the throughput run is not the course workload
    expect(row(6)).not.toContain('20,000');
    expect(row(5)).toContain('not yet measured');
    expect(row(1)).toContain('no workload');
    expect(row(0)).toContain('no workload'); // no environment record in this folder
  });

  it('names the workloads a lesson ran on the card when it has not run the map\'s one', () => {
    const records = loadRecords(writeFixtures([benchRecord({ lesson: 13, tok: 10, workload: 'shared-prefix' }), benchRecord({ lesson: 13, tok: 9, workload: 'throughput' })])).records;
    const section = courseMapSection(LESSONS, records, { referenceCard: 'NVIDIA H200' });
    const row = section.split('\n').find((r) => r.startsWith('| 13 |'))!;
    expect(row).toContain("not run on this workload yet (on this card: shared-prefix, throughput; see the chart and the lesson's README)");
  });

  it('says a lesson with only a serving record on the card has run its serving benchmark', () => {
    const committed = loadRecords(COMMITTED_RESULTS).records;
    const serve = committed.filter((r) => r.record.kind === 'serve' && r.record.hardware.card === 'NVIDIA H200');
    expect(serve.length).toBeGreaterThan(0);
    const lesson = serve[0]!.record.lesson;
    const section = courseMapSection(LESSONS, serve, { referenceCard: 'NVIDIA H200' });
    const row = section.split('\n').find((r) => r.startsWith(`| ${String(lesson).padStart(2, '0')} |`))!;
    expect(row).toContain('not run on this workload yet (on this card: the serving benchmark;');
  });

  it('points to other cards where the reference card has no run', () => {
    const records = loadRecords(writeFixtures([benchRecord({ lesson: 7, tok: 10, card: H100 })])).records;
    const section = courseMapSection(LESSONS, records, { referenceCard: 'NVIDIA H200' });
    expect(section).toContain(`not yet measured on this card (measured on ${H100}: see the chart)`);
  });

  it('quotes lesson 00\'s environment record for lesson 00', () => {
    const rec = committedEnvironment();
    const section = courseMapSection(LESSONS, loadRecords(COMMITTED_RESULTS).records);
    expect(section).toContain(`copy ${fmt(rec.results.copy.gbPerS)} GB/s, bf16 GEMM ${fmt(rec.results.gemm.tflops)} TFLOP/s`);
  });

  it('replaces only the text between the markers, and refuses a README without them', () => {
    const readme = `# x\nbefore\n${COURSE_MAP_START}\nold\n${COURSE_MAP_END}\nafter\n`;
    const out = replaceCourseMap(readme, '\nnew\n');
    expect(out).toBe(`# x\nbefore\n${COURSE_MAP_START}\nnew\n${COURSE_MAP_END}\nafter\n`);
    expect(replaceCourseMap(out, '\nnew\n')).toBe(out);
    expect(currentCourseMap(out)).toBe('\nnew\n');
    expect(() => replaceCourseMap('# no markers', 'x')).toThrow(/markers/);
    expect(() => replaceCourseMap(`${COURSE_MAP_END}${COURSE_MAP_START}`, 'x')).toThrow(/out of order/);
  });

  it('writes the lesson-00 paragraph from the reference card\'s latest full record, and says so when there is none', () => {
    const rec = committedEnvironment();
    const older = { ...rec, date: '2000-01-01T00:00:00Z', results: { ...rec.results, copy: { ...rec.results.copy, gbPerS: 1 } } };
    const records = loadRecords(writeFixtures([older, rec])).records;
    const text = environmentSection(records, { recordsLink: 'r/' });
    expect(text).toContain(`[lesson 00's record](r/001_fixture.json) on an **${REFERENCE_CARD}**`);
    expect(text).toContain(`device copy at ${fmt(rec.results.copy.gbPerS)} GB/s (PyTorch ${rec.results.baseline.torch} on the same card: ${fmt(rec.results.baseline.copy.gbPerS)} GB/s)`);
    expect(text).toContain(`at ${fmt(rec.results.gemm.tflops)} TFLOP/s (PyTorch: ${fmt(rec.results.baseline.gemm.tflops)} TFLOP/s)`);
    expect(text).toContain(`${fmt(rec.results.overhead.facadeUs)} µs of host time through the TypeScript facade`);
    expect(environmentSection([], { referenceCard: 'Some GPU' })).toContain('No lesson-00 record on the Some GPU yet');
  });

  it('README.md is up to date with the committed records and their staleness (run `pnpm readme` if this fails)', () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const records = loadRecords(COMMITTED_RESULTS).records;
    const freshness = gitFreshness();
    const unknown = records.map((r) => freshness(r.record)).filter((f) => f?.state === 'unknown');
    // Staleness comes from git history: a clone without it cannot reproduce the README (it would say "unknown").
    if (unknown.length) return console.log(`chart.test: README staleness not checked: ${unknown[0]!.reason}`);
    expect(currentCourseMap(readme), 'README.md has no course map markers').toBeDefined();
    expect(currentCourseMap(readme), 'README.md course map is out of date: run pnpm readme').toBe(courseMapSection(LESSONS, records, { freshness }));
    expect(regenerateReadme(readme, LESSONS, records, { freshness }), 'README.md is out of date with bench-results/: run pnpm readme').toBe(readme);
  });

  it('names each number\'s commit, its runs and spread, and marks stale and unchecked records', () => {
    const runs = [
      { ...benchRecord({ lesson: 3, tok: 100, card: REFERENCE_CARD }), commit: 'aaaaaaa11111' },
      {
        ...benchRecord({ lesson: 4, tok: 300, card: REFERENCE_CARD }),
        commit: 'bbbbbbb22222',
        repeats: { count: 3, outputTokPerS: [290, 300, 306], seconds: [1, 1, 1], medianOutputTokPerS: 300, minOutputTokPerS: 290, maxOutputTokPerS: 306, spreadPct: (100 * 16) / 300, resultsRun: 1 },
      },
    ].map((record, i) => ({ file: `r${i}.json`, record }));
    const freshness: FreshnessOf = (r) =>
      r.commit.startsWith('a') ? { state: 'stale', commit: r.commit, dirty: false, since: 'ccccccc', changed: ['x.ts'] } : { state: 'fresh', commit: r.commit, dirty: false };
    const map = courseMapSection(LESSONS, runs, { freshness });
    expect(map).toContain('| [100 tok/s](bench-results/r0.json); 1 run, no spread measured; commit `aaaaaaa`, **stale**: the code changed since (the chart says where) |');
    expect(map).toContain('| [300 tok/s](bench-results/r1.json), ×3.00 over 03; median of 3 runs (290 to 306, spread 5.3%); commit `bbbbbbb` |');
    expect(courseMapSection(LESSONS, runs, { freshness: (r) => ({ state: 'unknown', commit: r.commit, dirty: false, reason: 'no git' }) })).toContain('commit `aaaaaaa`, freshness unknown (no git)');
    const view = buildTokSeries(benchRuns(runs), freshness);
    expect(view.series[0]!.points.map((p) => [p?.repeats, p?.freshness?.state])).toEqual([
      [undefined, 'stale'],
      [{ count: 3, min: 290, max: 306, spreadPct: (100 * 16) / 300 }, 'fresh'],
    ]);
    const spec = tokChartSpec(view)!;
    expect(spec.datasets[0]!.stale).toEqual([true, false]);
    expect(spec.datasets[0]!.ranges).toEqual([null, [290, 306]]);
  });
});

describe('time to first token on the chart page', () => {
  it("shows a run's p50 / p99 where its record has them, and nothing where it has not", () => {
    const withTtft = benchRecord({ lesson: 13, tok: 900, workload: 'shared-prefix' });
    withTtft.results.firstTokenMs = { p50: 812.25, p99: 1490.5, mean: 900, max: 1500, requests: 256 };
    const without = benchRecord({ lesson: 12, tok: 400, workload: 'shared-prefix' });
    const model = buildChartModel(loadRecords(writeFixtures([without, withTtft])));
    const points = model.tok.series[0]!.points.filter((p) => p !== null);
    expect(points.map((p) => p!.firstTokenMs)).toEqual([undefined, { p50: 812.25, p99: 1490.5 }]);
    const html = renderPage(model);
    expect(html).toContain('<th>time to first token p50 / p99, ms</th>');
    expect(html).toContain(`<td class="num">${fmt(812.25)} / ${fmt(1490.5)}</td>`);
  });
});

describe('pnpm chart', () => {
  it('writes index.html from AIOS_RESULTS_DIR without touching README.md', () => {
    const dir = writeFixtures(standardFixture());
    const envFiles = copyEnvironmentRecords(dir);
    const readmeBefore = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const out = execFileSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx'), [path.join(REPO_ROOT, 'engine-core/src/cli/chart.ts'), '--no-png'], {
      cwd: REPO_ROOT,
      env: { ...process.env, AIOS_RESULTS_DIR: dir },
      encoding: 'utf8',
    });
    expect(out).toContain(`${6 + envFiles.length} record(s) in`);
    const cards = new Set(envFiles.map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')).hardware.card));
    expect(out).toContain(`6 lesson run(s) charted, ${cards.size} environment record(s)`);
    expect(out).not.toMatch(/README/);
    expect(existsSync(path.join(dir, 'index.html'))).toBe(true);
    expect(existsSync(path.join(dir, 'chart.png'))).toBe(false);
    expect(readFileSync(path.join(dir, 'index.html'), 'utf8')).toContain('NVIDIA H200 · throughput');
    expect(readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8')).toBe(readmeBefore);
  });

  it('still writes the page, with a note, when chromium is missing', () => {
    const dir = writeFixtures([benchRecord({ lesson: 3, tok: 10 })]);
    const out = execFileSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx'), [path.join(REPO_ROOT, 'engine-core/src/cli/chart.ts'), '--results', dir], {
      cwd: REPO_ROOT,
      env: { ...process.env, AIOS_CHROMIUM: path.join(dir, 'no-such-chromium') },
      encoding: 'utf8',
    });
    expect(out).toMatch(/chart\.png was not rendered/);
    expect(existsSync(path.join(dir, 'index.html'))).toBe(true);
  });

  it('leaves its output alone when nothing changed: index.html by content, chart.png by the page hash it carries', () => {
    const dir = writeFixtures([benchRecord({ lesson: 3, tok: 10 }), benchRecord({ lesson: 4, tok: 40 })]);
    const png = path.join(dir, 'chart.png');
    // A stand-in PNG stamped with the page's hash: the CLI must keep it and not need chromium.
    const chart = (env: Record<string, string> = {}) =>
      execFileSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx'), [path.join(REPO_ROOT, 'engine-core/src/cli/chart.ts'), '--results', dir], {
        cwd: REPO_ROOT,
        env: { ...process.env, AIOS_CHROMIUM: path.join(dir, 'no-such-chromium'), ...env },
        encoding: 'utf8',
      });
    expect(chart()).toMatch(/wrote .*index\.html/);
    const page = readFileSync(path.join(dir, 'index.html'), 'utf8');
    const tiny = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082', 'hex');
    writeFileSync(png, tiny);
    writePngText(png, PAGE_HASH_KEY, sha256(page));
    const stamped = readFileSync(png);
    const second = chart();
    expect(second).toMatch(/index\.html: up to date/);
    expect(second).toMatch(/chart\.png: up to date \(rendered from this same page\)/);
    expect(readFileSync(png).equals(stamped)).toBe(true);
    expect(readPngText(png, PAGE_HASH_KEY)).toBe(sha256(page));
    // A new record changes the page: the PNG's hash no longer matches, so it would be rendered again.
    writeFileSync(path.join(dir, 'zzz_new.json'), JSON.stringify(benchRecord({ lesson: 5, tok: 50 })));
    const third = chart();
    expect(third).toMatch(/wrote .*index\.html/);
    expect(third).toMatch(/chart\.png was not rendered/);
  });
});
