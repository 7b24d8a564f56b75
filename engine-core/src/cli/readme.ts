// `pnpm readme [--check]`: regenerates README.md's generated parts, the course
// map (between <!-- course-map:start --> and <!-- course-map:end -->) and the
// lesson-00 paragraph (<!-- environment:start --> ... <!-- environment:end -->),
// from the lesson list and the records in bench-results/. --check only reports
// whether they are stale (exit 1 if so).
import path from 'node:path';
import { parseArgs } from 'node:util';

import { REPO_ROOT } from '../bench/records.ts';
import { updateReadme } from '../chart/coursemap.ts';
import { loadRecords } from '../chart/data.ts';
import { LESSONS } from './lessons.ts';

const { values } = parseArgs({ options: { check: { type: 'boolean', default: false } } });
const loaded = loadRecords(path.join(REPO_ROOT, 'bench-results'));
for (const s of loaded.skipped) console.warn(`skipped ${s.file}: ${s.reason}`);
const { changed } = updateReadme(path.join(REPO_ROOT, 'README.md'), LESSONS, loaded.records, { check: values.check });
if (values.check) {
  console.log(changed ? 'README.md is out of date with bench-results/: run pnpm readme' : 'README.md is up to date with bench-results/');
  process.exitCode = changed ? 1 : 0;
} else {
  console.log(changed ? 'README.md updated from bench-results/' : 'README.md already up to date with bench-results/');
}
