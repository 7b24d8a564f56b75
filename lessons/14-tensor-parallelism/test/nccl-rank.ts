// Rank 1 of the NCCL test (tp.gpu.test.ts), in a worker thread on cuda:1: joins
// the communicator and calls the same collectives as rank 0, in the same order.
// A wrong value it receives fails the group with what it saw.
import { workerData } from 'node:worker_threads';

import { native } from '@aios/engine-core';

import { GroupMemory } from '../src/group-memory.ts';
import { ncclCase, ncclCollectives } from './nccl-case.ts';

const { sab, shape, ncclId, n } = workerData as { sab: SharedArrayBuffer; shape: { size: number; planInts: number; slotBytes: number }; ncclId: Uint8Array; n: number };
const mem = new GroupMemory(sab, shape);
try {
  const comm = new native.NcclComm(1, 2, 1, ncclId, 60_000);
  const { c, x, all, b } = ncclCollectives(comm, 1, n);
  const expected = ncclCase(0, n);
  const bad = [
    ['allReduce', x.toArray() as Float32Array, c.reduceSum],
    ['allGather', all.toArray() as Float32Array, c.gathered],
    ['broadcast', b.toArray() as Float32Array, expected.broadcastBf16],
  ].find(([, got, want]) => (got as Float32Array).some((v, i) => v !== (want as Float32Array)[i]));
  if (bad) throw new Error(`rank 1: ${bad[0] as string} gave wrong values`);
  comm.dispose();
} catch (e) {
  mem.fail(1, e instanceof Error ? e.message : String(e));
} finally {
  mem.exit();
}
