// `pnpm chart`: bench-results/index.html (every record, charted; Chart.js
// inlined, so it opens offline) and bench-results/chart.png (the same page in
// headless chromium). Also refreshes README.md's generated parts (pnpm readme).
//
//   pnpm chart [--results DIR] [--out DIR] [--no-png]
//
// --results defaults to AIOS_RESULTS_DIR or bench-results/; --out to the results folder.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { REPO_ROOT, RESULTS_DIR } from '../bench/records.ts';
import { findChromium, renderPng } from '../chart/browser.ts';
import { updateReadme } from '../chart/coursemap.ts';
import { buildChartModel, gitFreshness, loadRecords } from '../chart/data.ts';
import { renderPage } from '../chart/page.ts';
import { PAGE_HASH_KEY, readPngText, sha256, writePngText } from '../chart/png-stamp.ts';
import { type CommandSpec, type FlagValues, runCli } from './args.ts';
import { LESSONS } from './lessons.ts';

const CHART_FLAGS = {
  results: { type: 'string', value: 'DIR', help: 'where the records are (default: AIOS_RESULTS_DIR, else bench-results/)' },
  out: { type: 'string', value: 'DIR', help: 'where index.html and chart.png go (default: the results folder)' },
  'no-png': { type: 'boolean', help: 'write index.html only (chart.png needs chromium)' },
} as const;

const SPEC: CommandSpec<typeof CHART_FLAGS> = {
  command: 'pnpm chart',
  summary: "Draws every record into index.html (self-contained) and chart.png, and refreshes README.md's generated parts.",
  flags: CHART_FLAGS,
};

async function main(values: FlagValues<typeof CHART_FLAGS>): Promise<number> {
  const resultsDir = path.resolve(values.results ?? RESULTS_DIR);
  const outDir = path.resolve(values.out ?? resultsDir);
  const rel = (p: string) => path.relative(process.cwd(), p) || '.';

  const loaded = loadRecords(resultsDir);
  const freshness = gitFreshness();
  const model = buildChartModel(loaded, freshness);
  const bench = model.tok.series.reduce((n, s) => n + s.points.filter(Boolean).length, 0);
  console.log(
    `${loaded.records.length} record(s) in ${rel(resultsDir)}: ${bench} lesson run(s) charted, ${model.environment.length} environment record(s), ${model.kernels.length} kernel record(s)`,
  );
  for (const s of model.skipped) console.warn(`  skipped ${s.file}: ${s.reason}`);
  if (bench === 0) console.log('  no lesson runs recorded yet: the tok/s chart says so (nothing is drawn that was not measured)');

  mkdirSync(outDir, { recursive: true });
  const html = path.join(outDir, 'index.html');
  const source = path.relative(REPO_ROOT, resultsDir);
  const page = renderPage(model, { sourceLabel: source && !source.startsWith('..') ? `${source}/` : resultsDir });
  // Written only when it changed, so a run with nothing new leaves the work tree clean.
  if (existsSync(html) && readFileSync(html, 'utf8') === page) console.log(`${rel(html)}: up to date`);
  else {
    writeFileSync(html, page);
    console.log(`wrote ${rel(html)}`);
  }

  // The README quotes the repository's bench-results/ only, never a scratch folder.
  if (resultsDir === path.join(REPO_ROOT, 'bench-results')) {
    const { changed } = updateReadme(path.join(REPO_ROOT, 'README.md'), LESSONS, loaded.records, { freshness });
    console.log(`README.md generated parts: ${changed ? 'updated' : 'up to date'}`);
  }

  if (values['no-png']) return 0;
  const png = path.join(outDir, 'chart.png');
  const pageHash = sha256(page);
  if (readPngText(png, PAGE_HASH_KEY) === pageHash) {
    console.log(`${rel(png)}: up to date (rendered from this same page)`);
    return 0;
  }
  const chromium = findChromium();
  if (!chromium) {
    console.log(`note: chart.png was not rendered: no chromium at ${process.env.AIOS_CHROMIUM ?? '/usr/bin/chromium'}.`);
    console.log('      Install it (Debian/Ubuntu: apt-get install -y chromium) or set AIOS_CHROMIUM, then run pnpm chart again.');
    return 0;
  }
  await renderPng(html, png, chromium);
  writePngText(png, PAGE_HASH_KEY, pageHash);
  console.log(`wrote ${rel(png)}`);
  return 0;
}

void runCli(SPEC, main);
