// `pnpm serve`: lesson 15's OpenAI-compatible server (lessons/15-serving/src/cli.ts
// has the flags and the server). Loaded by path, as `pnpm bench` loads lessons:
// engine-core does not depend on the lessons.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { LESSONS, lessonDir } from './lessons.ts';

const serving = LESSONS.find((l) => l.slug === 'serving')!;
const mod = (await import(pathToFileURL(path.join(lessonDir(serving), 'src', 'cli.ts')).href)) as { runServeCli: () => Promise<number> };
await mod.runServeCli();
