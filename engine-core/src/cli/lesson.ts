// `pnpm lesson N [flags]`: runs lessons/NN-*/src/demo.ts with the remaining
// arguments. `pnpm lesson` alone (or --help) lists the lessons, which exist yet,
// and each one's flags (read from its demo's declaration, without running it).
import { pathToFileURL } from 'node:url';

import { type CommandSpec, describeModule } from './args.ts';
import { LESSONS, type LessonInfo, lessonDemo, parseLessonNumber, unknownLessonFolders } from './lessons.ts';

/** The flags a lesson's demo declares, except the two every command has. */
async function lessonFlags(info: LessonInfo): Promise<string> {
  const demo = lessonDemo(info);
  if (!demo) return '';
  let spec: CommandSpec | undefined;
  try {
    spec = await describeModule(() => import(pathToFileURL(demo).href));
  } catch (e) {
    return `(its demo failed to load: ${(e as Error).message})`;
  }
  if (!spec) return '(its demo declares no flags)';
  return Object.entries(spec.flags)
    .map(([name, f]) => `--${name}${f.type === 'string' ? ` ${f.value}` : ''}`)
    .join(' ');
}

async function listing(): Promise<string> {
  const rows: string[] = [];
  for (const l of LESSONS) {
    const demo = lessonDemo(l);
    rows.push(`  ${String(l.number).padStart(2, '0')}  ${demo ? 'ready  ' : 'not yet'}  ${l.title.padEnd(22)} ${l.idea}`);
    if (demo) rows.push(`               flags: ${await lessonFlags(l)}`);
  }
  const stray = unknownLessonFolders();
  return [
    'usage: pnpm lesson N [flags]      (pnpm lesson N --help: what each flag does)',
    '',
    'Lessons:',
    ...rows,
    ...(stray.length ? [`  (folders not in the course map: ${stray.join(', ')})`] : []),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [arg, ...rest] = argv;
  if (arg === undefined || arg === '--help' || arg === '-h' || arg === 'list') {
    console.log(await listing());
    return 0;
  }
  const info = parseLessonNumber(arg);
  if (!info) {
    console.error(`pnpm lesson: no lesson "${arg}" (expected a number from 0 to ${LESSONS.length - 1}).\n\n${await listing()}`);
    return 2;
  }
  const demo = lessonDemo(info);
  if (!demo) {
    const ready = LESSONS.filter((l) => lessonDemo(l)).map((l) => l.number);
    console.error(`pnpm lesson: lesson ${info.number} (${info.title}) is not written yet. Lessons that exist: ${ready.join(', ') || 'none'}.\n\n${await listing()}`);
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
