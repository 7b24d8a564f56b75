// The README's generated sections: the course map (every lesson with its
// one-line idea and its latest measured tok/s on the reference card) and the
// lesson-00 numbers, from the lesson list and the committed records, so the
// README never drifts from bench-results/.
//   `pnpm readme` rewrites it; `pnpm chart` does too; a test fails when it is stale.
import { readFileSync, writeFileSync } from 'node:fs';

import { FIRST_WORKLOAD_LESSON, type LessonInfo } from '../cli/lessons.ts';

import { type Freshness, type FreshnessOf, benchRuns, buildTokSeries, environmentEntries, type LoadedRecord, selectLatest } from './data.ts';
import { fmt, fmtMultiplier } from './page.ts';

export const COURSE_MAP_START = '<!-- course-map:start -->';
export const COURSE_MAP_END = '<!-- course-map:end -->';
export const ENVIRONMENT_START = '<!-- environment:start -->';
export const ENVIRONMENT_END = '<!-- environment:end -->';

/** The card the README quotes (the issues' reference card: lessons 00-06 are recorded on it); the chart shows every card. */
export const REFERENCE_CARD = 'NVIDIA H200';
/** The workload the README quotes (docs/benchmarking.md). */
export const COURSE_WORKLOAD = 'course';

export interface CourseMapOptions {
  referenceCard?: string;
  workload?: string;
  /** Prefix of the links to records, relative to the README (default "bench-results/"). */
  recordsLink?: string;
  /** Marks stale records (gitFreshness() in pnpm readme and pnpm chart); unmarked when absent. */
  freshness?: FreshnessOf;
}

/** ", commit 258577d" and, where the code changed since, the stale mark: what a README number carries. */
export function provenance(commit: string, f: Freshness | undefined): string {
  const short = commit.replace(/^([0-9a-f]{7})[0-9a-f]*/, '$1');
  const mark = !f ? '' : f.state === 'stale' ? ', **stale**: the code changed since (the chart says where)' : f.state === 'unknown' ? `, freshness unknown (${f.reason})` : '';
  return `commit \`${short}\`${mark}`;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** The markdown between the markers (the markers themselves excluded). */
export function courseMapSection(lessons: readonly LessonInfo[], records: readonly LoadedRecord[], opts: CourseMapOptions = {}): string {
  const card = opts.referenceCard ?? REFERENCE_CARD;
  const workload = opts.workload ?? COURSE_WORKLOAD;
  const link = opts.recordsLink ?? 'bench-results/';
  const runs = selectLatest(benchRuns(records).filter((r) => r.record.workload === workload));
  const env = environmentEntries(records, opts.freshness).entries.find((e) => e.card === card);
  // The chart's series of this card and workload, one per model: the README quotes the same points and multipliers.
  const series = buildTokSeries(runs, opts.freshness).series.filter((s) => s.card === card);
  const models = (lesson: number): number => series.filter((s) => s.points.some((p) => p?.lesson === lesson)).length;

  const cell = (l: LessonInfo): string => {
    const mine = series.flatMap((s) => s.points.filter((p) => p?.lesson === l.number).map((p) => ({ p: p!, model: s.model })));
    if (mine.length > 0) {
      return mine
        .map(({ p, model }) => {
          const mult = p.multiplier !== undefined ? `, ${fmtMultiplier(p.multiplier)} over ${pad(p.prevLesson!)}` : '';
          const runs = p.repeats ? `median of ${p.repeats.count} runs (${fmt(p.repeats.min)} to ${fmt(p.repeats.max)}, spread ${p.repeats.spreadPct.toFixed(1)}%)` : '1 run, no spread measured';
          return `[${fmt(p.tokPerS)} tok/s](${link}${p.file})${mult}${p.partial ? ' (partial run)' : ''}${models(l.number) > 1 ? ` (${model})` : ''}; ${runs}; ${provenance(p.commit, p.freshness)}`;
        })
        .join('; ');
    }
    if (l.number === 0 && env)
      return `no workload; measured [copy ${fmt(env.copy.gbPerS)} GB/s, ${env.gemm.dtype} GEMM ${fmt(env.gemm.tflops)} TFLOP/s](${link}${env.file}); ${provenance(env.commit, env.freshness)}`;
    const elsewhere = [...new Set(runs.filter((r) => r.record.lesson === l.number).map((r) => r.record.hardware.card))].sort();
    if (elsewhere.length > 0) return `not yet measured on this card (measured on ${elsewhere.join(', ')}: see the chart)`;
    if (l.number < FIRST_WORKLOAD_LESSON) return `no workload (it starts at lesson ${pad(FIRST_WORKLOAD_LESSON)})`;
    const others = [
      ...new Set(benchRuns(records).filter((r) => r.record.lesson === l.number && r.record.hardware.card === card && r.record.workload !== workload).map((r) => r.record.workload)),
    ].sort();
    if (others.length > 0) return `not run on this workload yet (on this card: ${others.join(', ')}; see the chart and the lesson's README)`;
    if (records.some((r) => r.record.kind === 'serve' && r.record.lesson === l.number && r.record.hardware.card === card))
      return "not run on this workload yet (on this card: the serving benchmark; see the chart and the lesson's README)";
    return 'not yet measured';
  };

  const lines = [
    `<!-- generated by \`pnpm readme\` from engine-core/src/cli/lessons.ts and bench-results/: edit those, not this table -->`,
    '',
    `| # | lesson | what it swaps in | ${workload} workload, output tok/s on ${card} |`,
    '|---|---|---|---|',
    ...lessons.map((l) => `| ${pad(l.number)} | ${l.title} (\`lessons/${pad(l.number)}-${l.slug}\`) | ${l.idea} | ${cell(l)} |`),
  ];
  return `\n${lines.join('\n')}\n`;
}

function sectionBounds(text: string, startMarker: string, endMarker: string): [number, number] | undefined {
  const start = text.indexOf(startMarker);
  const end = text.indexOf(endMarker);
  if (start < 0 || end < 0 || end < start) return undefined;
  return [start + startMarker.length, end];
}

/** `text` with what lies between the two markers replaced; throws when the markers are missing or out of order. */
export function replaceSection(text: string, startMarker: string, endMarker: string, section: string): string {
  const b = sectionBounds(text, startMarker, endMarker);
  if (!b) throw new Error(`README.md: the markers ${startMarker} ... ${endMarker} are missing or out of order`);
  return text.slice(0, b[0]) + section + text.slice(b[1]);
}

/** The text between the two markers, or undefined when they are missing. */
export function currentSection(text: string, startMarker: string, endMarker: string): string | undefined {
  const b = sectionBounds(text, startMarker, endMarker);
  return b ? text.slice(b[0], b[1]) : undefined;
}

export function replaceCourseMap(readme: string, section: string): string {
  return replaceSection(readme, COURSE_MAP_START, COURSE_MAP_END, section);
}

export function currentCourseMap(readme: string): string | undefined {
  return currentSection(readme, COURSE_MAP_START, COURSE_MAP_END);
}

function sizeLabel(bytes: number): string {
  return bytes % 2 ** 30 === 0 ? `${bytes / 2 ** 30} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

/** The README's paragraph of lesson-00 numbers: the latest full environment record on the reference card. */
export function environmentSection(records: readonly LoadedRecord[], opts: CourseMapOptions = {}): string {
  const card = opts.referenceCard ?? REFERENCE_CARD;
  const link = opts.recordsLink ?? 'bench-results/';
  const e = environmentEntries(records, opts.freshness).entries.find((x) => x.card === card);
  if (!e) return `\nNo lesson-00 record on the ${card} yet: \`pnpm lesson 0\` on that card writes one.\n`;
  const b = e.baseline;
  const torch = b ? `PyTorch ${b.torch}` : '';
  const o = e.overhead;
  const extra = [`${fmt(o.bindingUs)} µs through the raw binding`];
  if (o.cudaLaunchUs !== undefined) extra.push(`${fmt(o.cudaLaunchUs)} µs for a bare CUDA launch from C++`);
  if (b?.addOverheadUs !== undefined) extra.push(`${torch}'s \`torch.add\`: ${fmt(b.addOverheadUs)} µs`);
  const text =
    `What is measured so far, from [lesson 00's record](${link}${e.file}) on an **${card}** (${provenance(e.commit, e.freshness)}${e.quick ? ', a --quick run' : ''}): ` +
    `a ${sizeLabel(e.copy.bytes)} device copy at ${fmt(e.copy.gbPerS)} GB/s${b ? ` (${torch} on the same card: ${fmt(b.copyGbPerS)} GB/s)` : ''}, ` +
    `a ${e.gemm.dtype} ${e.gemm.M}×${e.gemm.N}×${e.gemm.K} GEMM through cuBLASLt at ${fmt(e.gemm.tflops)} TFLOP/s${b ? ` (PyTorch: ${fmt(b.gemmTflops)} TFLOP/s)` : ''}, ` +
    `and one tiny op costing ${fmt(o.facadeUs)} µs of host time through the TypeScript facade (${extra.join('; ')}).`;
  return `\n<!-- generated by \`pnpm readme\` from bench-results/ -->\n${text}\n`;
}

export interface ReadmeUpdate {
  changed: boolean;
  text: string;
}

/** README text with both generated sections (course map, lesson-00 numbers) regenerated. */
export function regenerateReadme(readme: string, lessons: readonly LessonInfo[], records: readonly LoadedRecord[], opts: CourseMapOptions = {}): string {
  const withMap = replaceCourseMap(readme, courseMapSection(lessons, records, opts));
  return replaceSection(withMap, ENVIRONMENT_START, ENVIRONMENT_END, environmentSection(records, opts));
}

/** Regenerates README.md's generated sections from `lessons` and `records`; writes the file unless `check`. */
export function updateReadme(readmeFile: string, lessons: readonly LessonInfo[], records: readonly LoadedRecord[], opts: CourseMapOptions & { check?: boolean } = {}): ReadmeUpdate {
  const before = readFileSync(readmeFile, 'utf8');
  const text = regenerateReadme(before, lessons, records, opts);
  const changed = text !== before;
  if (changed && !opts.check) writeFileSync(readmeFile, text);
  return { changed, text };
}
