// `pnpm lesson N [args...]`: runs lessons/NN-*/src/demo.ts with the remaining
// arguments. `pnpm lesson` alone lists the lessons and which exist yet.
import { pathToFileURL } from 'node:url';

import { LESSONS, lessonDemo, parseLessonNumber, unknownLessonFolders } from './lessons.ts';

function listing(): string {
  const rows = LESSONS.map((l) => {
    const mark = lessonDemo(l) ? 'ready  ' : 'not yet';
    return `  ${String(l.number).padStart(2, '0')}  ${mark}  ${l.title.padEnd(22)} ${l.idea}`;
  });
  const stray = unknownLessonFolders();
  return ['Lessons (pnpm lesson N [args]):', ...rows, ...(stray.length ? [`  (folders not in the course map: ${stray.join(', ')})`] : [])].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [arg, ...rest] = argv;
  if (arg === undefined || arg === '--help' || arg === '-h' || arg === 'list') {
    console.log(listing());
    return 0;
  }
  const info = parseLessonNumber(arg);
  if (!info) {
    console.error(`pnpm lesson: no lesson "${arg}" (expected a number from 0 to ${LESSONS.length - 1}).\n\n${listing()}`);
    return 2;
  }
  const demo = lessonDemo(info);
  if (!demo) {
    const ready = LESSONS.filter((l) => lessonDemo(l)).map((l) => l.number);
    console.error(`pnpm lesson: lesson ${info.number} (${info.title}) is not written yet. Lessons that exist: ${ready.join(', ') || 'none'}.\n\n${listing()}`);
    return 2;
  }
  // The demo reads its own arguments from process.argv, as if started directly.
  process.argv = [process.argv[0]!, demo, ...rest];
  await import(pathToFileURL(demo).href);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exit(code);
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
