// A rank's worker thread starts here, in plain JavaScript: it registers tsx (the
// lessons are TypeScript, and a worker does not inherit the loader of the thread
// that started it, nor of a test runner) and imports the rank's module. If that
// import fails, the failure goes into the group's shared memory, where rank 0,
// which is blocked waiting for this rank and cannot see the worker's 'error'
// event, finds it and stops with its message.
import { workerData } from 'node:worker_threads';

import { register } from 'tsx/esm/api';

register();
try {
  await import(workerData.entry);
} catch (e) {
  const { GroupMemory } = await import(new URL('./group-memory.ts', import.meta.url).href);
  new GroupMemory(workerData.sab, workerData.shape).fail(workerData.rank, `rank ${workerData.rank} could not start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
}
