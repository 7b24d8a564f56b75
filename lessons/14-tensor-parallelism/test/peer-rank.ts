// Rank 1 of the peer all-reduce test (tp.gpu.test.ts), in a worker thread on cuda:1: the same
// calls as rank 0 (peerAllReduceCase). A wrong value fails the group with what it saw.
import { workerData } from 'node:worker_threads';

import { native } from '@aios/engine-core';

import { NcclCollectives } from '../src/collectives.ts';
import { GroupMemory } from '../src/group-memory.ts';
import { peerAllReduceCase } from './nccl-case.ts';

const { sab, shape, ncclId } = workerData as { sab: SharedArrayBuffer; shape: { size: number; planInts: number; slotBytes: number }; ncclId: Uint8Array };
const mem = new GroupMemory(sab, shape);
try {
  const coll = new NcclCollectives(new native.NcclComm(1, 2, 1, ncclId, 60_000), 1, 2, mem, 60_000);
  try {
    peerAllReduceCase(coll, 1, (what, got, want) => {
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) throw new Error(`rank 1: ${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
    });
  } finally {
    coll.dispose();
  }
} catch (e) {
  mem.fail(1, e instanceof Error ? e.message : String(e));
} finally {
  mem.exit();
}
