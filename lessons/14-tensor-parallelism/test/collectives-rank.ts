// A rank of the shared-memory collectives test (tp.test.ts), in a worker thread.
import { workerData } from 'node:worker_threads';

import { GroupMemory } from '../src/group-memory.ts';
import { SharedMemoryCollectives } from '../src/collectives.ts';
import { runCase } from './collectives-case.ts';

const mem = new GroupMemory(workerData.sab, workerData.shape);
try {
  runCase(new SharedMemoryCollectives(mem, workerData.rank as number, 20_000));
} catch (e) {
  mem.fail(workerData.rank as number, e instanceof Error ? e.message : String(e));
} finally {
  mem.exit();
}
