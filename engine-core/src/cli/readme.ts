// `pnpm readme [--check]`: regenerates README.md's generated parts, the course
// map (between <!-- course-map:start --> and <!-- course-map:end -->) and the
// lesson-00 paragraph (<!-- environment:start --> ... <!-- environment:end -->),
// from the lesson list and the records in bench-results/. --check only reports
// whether they are stale (exit 1 if so).
import path from 'node:path';

import { REPO_ROOT } from '../bench/records.ts';
import { updateReadme } from '../chart/coursemap.ts';
import { gitFreshness, loadRecords } from '../chart/data.ts';
import { type FlagValues, runCli } from './args.ts';
import { LESSONS } from './lessons.ts';

const FLAGS = { check: { type: 'boolean', help: 'only report whether README.md is out of date (exit 1 if so)' } } as const;

function main(values: FlagValues<typeof FLAGS>): number {
  const loaded = loadRecords(path.join(REPO_ROOT, 'bench-results'));
  for (const s of loaded.skipped) console.warn(`skipped ${s.file}: ${s.reason}`);
  const { changed } = updateReadme(path.join(REPO_ROOT, 'README.md'), LESSONS, loaded.records, { check: values.check ?? false, freshness: gitFreshness() });
  if (values.check) {
    console.log(changed ? 'README.md is out of date with bench-results/: run pnpm readme' : 'README.md is up to date with bench-results/');
    return changed ? 1 : 0;
  }
  console.log(changed ? 'README.md updated from bench-results/' : 'README.md already up to date with bench-results/');
  return 0;
}

void runCli({ command: 'pnpm readme', summary: "Regenerates README.md's generated parts (the course map, lesson 00's numbers) from bench-results/.", flags: FLAGS }, main);
