// Rank 1 of the NCCL CUDA-graph test (tp.gpu.test.ts), in a worker thread on cuda:1:
// captures the same all-reduce as rank 0 into a CUDA graph, replays it twice as
// rank 0 does, checks the sums, and frees the graph before the communicator (the
// order NCCL needs). A wrong value fails the group with what it saw.
import { workerData } from 'node:worker_threads';

import { native } from '@aios/engine-core';

import { GroupMemory } from '../src/group-memory.ts';
import { replayCapturedAllReduce } from './nccl-case.ts';

const { sab, shape, ncclId, n } = workerData as { sab: SharedArrayBuffer; shape: { size: number; planInts: number; slotBytes: number }; ncclId: Uint8Array; n: number };
const mem = new GroupMemory(sab, shape);
try {
  const comm = new native.NcclComm(1, 2, 1, ncclId, 60_000);
  const graph = replayCapturedAllReduce(comm, mem, 1, n, (got, want, replay) => {
    if (got.some((v, i) => v !== want[i])) throw new Error(`rank 1: replay ${replay} of the captured all-reduce gave wrong values`);
  });
  graph.dispose();
  comm.dispose();
} catch (e) {
  mem.fail(1, e instanceof Error ? e.message : String(e));
} finally {
  mem.exit();
}
