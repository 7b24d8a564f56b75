// The results page in a real browser: Debian's chromium through playwright-core
// loads the generated index.html from file:// (every network request refused),
// and the test reads back what Chart.js drew from window.__aiosCharts.
// Skips, saying so, where /usr/bin/chromium (or AIOS_CHROMIUM) is absent; CI installs it.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { findChromium, launchChromium, openResultsPage } from '../src/chart/browser.ts';
import { buildChartModel, environmentEntries, loadRecords } from '../src/chart/data.ts';
import { kernelVersions, renderPage } from '../src/chart/page.ts';
import { COMMITTED_RESULTS, benchRecord, copyEnvironmentRecords, kernelRecord, standardFixture, tempDir, writeFixtures } from './chart-fixtures.ts';

const chromium = findChromium();
if (!chromium) console.log(`chart.browser.test: skipped: no chromium at ${process.env.AIOS_CHROMIUM ?? '/usr/bin/chromium'} (apt-get install -y chromium)`);

interface DrawnDataset {
  label: string;
  role: string;
  data: (number | null)[];
  partial: boolean[] | null;
  pointStyle: unknown;
  pointLabels: (string | null)[] | null;
  drawnPoints: number;
}
interface DrawnChart {
  type: string;
  labels: (string | string[])[];
  /** Degrees the x labels were turned to fit (0: upright). */
  xRotation: number;
  yType: string;
  yMin: number;
  yMax: number;
  datasets: DrawnDataset[];
  canvas: { width: number; height: number; inkPixels: number };
  /** The boxes of the text drawn over points and bars (left, top, width, height). */
  labelBoxes: LabelBox[];
}
interface LabelBox {
  text: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Every pair of label boxes that intersect, as "A / B". */
function overlaps(labels: LabelBox[]): string[] {
  const out: string[] = [];
  labels.forEach((a, i) =>
    labels.slice(i + 1).forEach((b) => {
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) out.push(`${a.text} / ${b.text}`);
    }),
  );
  return out;
}

/** No two labels of any chart on the page overlap, and every chart that has labels drew some. */
function expectReadableLabels(drawn: Drawn): void {
  for (const [name, chart] of Object.entries(drawn)) {
    if (!chart) continue;
    expect(overlaps(chart.labelBoxes), `${name}: overlapping labels`).toEqual([]);
    for (const l of chart.labelBoxes) {
      expect(l.x, `${name}: ${l.text}`).toBeGreaterThanOrEqual(0);
      expect(l.y + l.h, `${name}: ${l.text}`).toBeLessThanOrEqual(chart.canvas.height);
    }
  }
}
/** tokps, copy, gemm, overhead, and kernel-<i>-prefill / kernel-<i>-decode per kernel record shown. */
type Drawn = Record<string, DrawnChart | null>;

/** What each chart on the page holds and drew, read from window.__aiosCharts. */
const readCharts = `(() => {
  const out = {};
  for (const [name, c] of Object.entries(window.__aiosCharts)) {
    if (!c) { out[name] = null; continue; }
    const ctx = c.canvas.getContext('2d');
    const px = ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
    let ink = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
    out[name] = {
      type: c.config.type,
      labels: c.data.labels,
      xRotation: c.scales.x.labelRotation,
      yType: c.scales.y.type,
      yMin: c.scales.y.min,
      yMax: c.scales.y.max,
      datasets: c.data.datasets.map((d, i) => ({
        label: d.label, role: d.aiosRole, data: d.data, partial: d.aiosPartial, pointStyle: d.pointStyle,
        pointLabels: d.aiosPointLabels, drawnPoints: c.getDatasetMeta(i).data.filter((e, j) => !e.skip && d.data[j] !== null && Number.isFinite(e.y)).length,
      })),
      canvas: { width: c.canvas.width, height: c.canvas.height, inkPixels: ink },
      labelBoxes: c.$aiosLabels || [],
    };
  }
  return out;
})()`;

/** Width and height from a PNG's IHDR chunk (and a check that it is a PNG at all). */
function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file);
  expect(b.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

describe.skipIf(!chromium)('results page in chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium(chromium!);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('draws the tok/s chart from fixture records: series, values, roofline, partial marker, multipliers', async () => {
    const dir = writeFixtures(standardFixture());
    copyEnvironmentRecords(dir);
    const html = path.join(dir, 'index.html');
    writeFileSync(html, renderPage(buildChartModel(loadRecords(dir))));

    const { page, errors } = await openResultsPage(browser, html);
    const drawn = (await page.evaluate(readCharts)) as Drawn;
    expect(errors).toEqual([]);

    const tok = drawn.tokps!;
    expect(tok.type).toBe('line');
    expect(tok.yType).toBe('logarithmic');
    expect(tok.labels).toEqual(['03 baseline-engine', '04 kv-cache', '06 paged-kv-cache']);
    const measured = tok.datasets.filter((d) => d.role === 'measured');
    expect(measured.map((d) => d.label)).toEqual(['NVIDIA H100 80GB HBM3 · course', 'NVIDIA H200 · course', 'NVIDIA H200 · throughput']);
    expect(measured.map((d) => d.drawnPoints)).toEqual([2, 3, 1]);
    const h200 = measured[1]!;
    expect(h200.data).toEqual([100, 450, 9000]);
    expect(h200.partial).toEqual([false, true, false]);
    expect(h200.pointStyle).toEqual(['circle', 'triangle', 'circle']);
    expect(h200.pointLabels).toEqual([null, '×4.50', '×20.0']);
    const roof = tok.datasets.filter((d) => d.role === 'roofline');
    expect(roof.map((d) => [d.label, d.data])).toEqual([['NVIDIA H200 · course: roofline', [42000, 42000, 42000]]]);
    expect(tok.yMin).toBeLessThanOrEqual(80);
    expect(tok.yMax).toBeGreaterThanOrEqual(42000);
    expect(tok.canvas.inkPixels).toBeGreaterThan(5000);
    // Every multiplier and the roofline label drawn, none over another.
    expect(tok.labelBoxes.map((l) => l.text).sort()).toEqual(['roofline 42,000', '×2.50', '×20.0', '×4.50'].sort());
    expectReadableLabels(drawn);

    // The per-op view from the committed lesson-00 record.
    const copy = drawn.copy!;
    expect(copy.type).toBe('bar');
    // One bar group per card with a lesson-00 record, as environmentEntries picks them.
    expect(copy.labels).toEqual(environmentEntries(loadRecords(COMMITTED_RESULTS).records).entries.map((e) => e.card));
    expect(copy.datasets.map((d) => d.role)).toEqual(['ours', 'baseline']);
    expect(drawn.gemm!.datasets[0]!.data[0]).toBeGreaterThan(0);
    const overheadRoles = drawn.overhead!.datasets.map((d) => d.role);
    expect(overheadRoles.filter((r) => r === 'ours').length).toBeGreaterThanOrEqual(2); // facade and binding, plus what the record has
    expect(overheadRoles.at(-1)).toBe('baseline');

    const png = path.join(dir, 'page.png');
    await page.locator('#charts').screenshot({ path: png });
    const size = pngSize(png);
    expect(size.width).toBeGreaterThan(800);
    expect(size.height).toBeGreaterThan(600);
    expect(statSync(png).size).toBeGreaterThan(30_000);
    await page.context().close();
  }, 60_000);

  it('with the committed records: draws every recorded series (or says there are none) and the lesson-00 view', async () => {
    const dir = tempDir();
    const html = path.join(dir, 'index.html');
    const model = buildChartModel(loadRecords(COMMITTED_RESULTS));
    writeFileSync(html, renderPage(model));
    const { page, errors } = await openResultsPage(browser, html);
    const drawn = (await page.evaluate(readCharts)) as Drawn;
    expect(errors).toEqual([]);
    if (model.tok.series.length === 0) {
      expect(drawn.tokps).toBeNull();
      expect(await page.locator('#tokps-empty').innerText()).toContain('No lesson runs recorded yet');
    } else {
      const labels = drawn.tokps!.datasets.map((d) => d.label);
      for (const s of model.tok.series) expect(labels).toContain(s.label);
      expect(drawn.tokps!.canvas.inkPixels).toBeGreaterThan(1000);
    }
    expect(drawn.copy!.datasets[0]!.drawnPoints).toBe(environmentEntries(loadRecords(COMMITTED_RESULTS).records).entries.length);
    // The per-kernel view: a prefill and a decode chart per kernel record shown, upright shape labels, every version and the peer.
    model.kernels.forEach((e, i) => {
      for (const phase of ['prefill', 'decode'] as const) {
        const shapes = e[phase];
        const chart = drawn[`kernel-${i}-${phase}`];
        if (shapes.length === 0) {
          expect(chart).toBeNull();
          continue;
        }
        expect(chart!.type).toBe('bar');
        expect(chart!.yType).toBe('logarithmic');
        expect(chart!.labels).toHaveLength(shapes.length);
        expect(chart!.xRotation, `kernel-${i}-${phase}: shape labels turned to fit`).toBe(0);
        const ours = chart!.datasets.filter((d) => d.role === 'ours');
        expect(ours).toHaveLength(kernelVersions(shapes).length);
        expect(ours.reduce((n, d) => n + d.drawnPoints, 0)).toBe(shapes.reduce((n, s) => n + s.versions.filter((v) => v.rate !== undefined).length, 0));
        if (shapes.some((s) => s.peer?.rate !== undefined)) expect(chart!.datasets.find((d) => d.role === 'baseline')!.drawnPoints).toBe(shapes.filter((s) => s.peer?.rate !== undefined).length);
        if (phase === 'decode' && e.copy.gbPerS !== undefined) {
          expect(chart!.datasets.find((d) => d.role === 'roofline')!.data[0]).toBe(e.copy.gbPerS);
          expect(chart!.labelBoxes.some((l) => l.text.startsWith('device copy'))).toBe(true);
          // Every bar of the newest version carries its share of the copy: none had to give way.
          const newest = kernelVersions(shapes).filter((v) => v !== 'lesson08').at(-1);
          const bars = shapes.filter((s) => s.versions.some((v) => v.version === newest && v.rate !== undefined)).length;
          expect(chart!.labelBoxes.filter((l) => /^[\d.]+%$/.test(l.text))).toHaveLength(bars);
        }
        if (phase === 'prefill') expect(chart!.labelBoxes.length).toBe(chart!.datasets.reduce((n, d) => n + d.drawnPoints, 0)); // every bar's value fits
        expect(chart!.canvas.inkPixels).toBeGreaterThan(3000);
      }
    });
    expectReadableLabels(drawn);
    expect(drawn.copy!.canvas.inkPixels).toBeGreaterThan(1000);
    const png = path.join(dir, 'page.png');
    await page.screenshot({ path: png, fullPage: true });
    expect(statSync(png).size).toBeGreaterThan(20_000);
    await page.context().close();
  }, 60_000);

  it('draws the kernel view from a fixture record: bars per version and SDPA, gaps where nothing was measured, the copy line', async () => {
    const dir = writeFixtures([...standardFixture(), kernelRecord()]);
    const html = path.join(dir, 'index.html');
    writeFileSync(html, renderPage(buildChartModel(loadRecords(dir))));
    const { page, errors } = await openResultsPage(browser, html);
    const drawn = (await page.evaluate(readCharts)) as Drawn;
    expect(errors).toEqual([]);
    expectReadableLabels(drawn);

    const prefill = drawn['kernel-0-prefill']!;
    expect(prefill.type).toBe('bar');
    expect(prefill.yType).toBe('logarithmic');
    expect(prefill.xRotation).toBe(0);
    expect(prefill.datasets.map((d) => [d.role, d.drawnPoints])).toEqual([['ours', 2], ['ours', 2], ['ours', 1], ['baseline', 1]]);
    expect(prefill.labelBoxes.map((l) => l.text).sort()).toEqual(['7.00', '7.50', '9.00', '9.50', '120', '250'].sort());
    expect(prefill.yMin).toBeLessThanOrEqual(7);
    expect(prefill.yMax).toBeGreaterThanOrEqual(250);

    const decode = drawn['kernel-0-decode']!;
    expect(decode.xRotation).toBe(0);
    expect(decode.datasets.map((d) => [d.role, d.drawnPoints])).toEqual([['ours', 2], ['ours', 2], ['ours', 2], ['ours', 1], ['baseline', 2], ['roofline', 2]]);
    expect(decode.labelBoxes.map((l) => l.text).sort()).toEqual(['83%', 'device copy 4,000 GB/s (same call)']);
    expect(decode.yMax).toBeGreaterThanOrEqual(4000);
    expect(decode.canvas.inkPixels).toBeGreaterThan(3000);
    expect(await page.locator('#details').innerText()).toContain('error: too many <blocks>');
    await page.context().close();
  }, 60_000);

  it('keeps labels apart where many lines meet: six cards within 2% of each other, their rooflines too, one stale with a range', async () => {
    const cards = ['A100', 'H100', 'H200', 'B200', 'L40S', 'RTX 4090'].map((c) => `NVIDIA ${c}`);
    const records = cards.flatMap((card, i) => [
      benchRecord({ lesson: 3, tok: 100 + i, card, roofline: 2000 + 10 * i }),
      benchRecord({ lesson: 4, tok: 300 + 2 * i, card, roofline: 2000 + 10 * i }),
      benchRecord({ lesson: 5, tok: 310 + 2 * i, card, roofline: 2000 + 10 * i }),
    ]);
    records[1] = { ...records[1]!, repeats: { count: 3, outputTokPerS: [280, 300, 330], seconds: [1, 1, 1], medianOutputTokPerS: 300, minOutputTokPerS: 280, maxOutputTokPerS: 330, spreadPct: 16.7, resultsRun: 1 } };
    const dir = writeFixtures(records);
    const html = path.join(dir, 'index.html');
    const stale = (r: { commit: string; lesson: number }) => ({ state: r.lesson === 4 ? ('stale' as const) : ('fresh' as const), commit: r.commit, dirty: false, since: 'abc1234', changed: ['x.ts'] });
    writeFileSync(html, renderPage(buildChartModel(loadRecords(dir), stale)));
    const { page, errors } = await openResultsPage(browser, html);
    const drawn = (await page.evaluate(readCharts)) as Drawn;
    expect(errors).toEqual([]);
    expectReadableLabels(drawn);
    const tok = drawn.tokps!;
    expect(tok.labelBoxes.length).toBeGreaterThanOrEqual(6); // crowded: some labels give way, but never overlap
    const first = tok.datasets.find((d) => d.role === 'measured')!;
    expect(first.pointStyle).toEqual(['circle', 'rectRot', 'circle']);
    await page.context().close();
  }, 60_000);
});
