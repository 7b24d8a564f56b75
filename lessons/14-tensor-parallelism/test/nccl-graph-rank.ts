// Rank 1 of the NCCL CUDA-graph test (tp.gpu.test.ts), in a worker thread on cuda:1:
// captures the same all-reduce as rank 0 into a CUDA graph, replays it twice as
// rank 0 does, checks the sums, and frees the graph before the communicator (the
// order NCCL needs). A wrong value fails the group with what it saw.
import { workerData } from 'node:worker_threads';

import { captureGraph, Tensor, native } from '@aios/engine-core';
import { dtypeCode } from '@aios/engine-core/dtype.ts';

import { GroupMemory } from '../src/group-memory.ts';
import { ncclCase } from './nccl-case.ts';

const { sab, shape, ncclId, n } = workerData as { sab: SharedArrayBuffer; shape: { size: number; planInts: number; slotBytes: number }; ncclId: Uint8Array; n: number };
const mem = new GroupMemory(sab, shape);
try {
  const comm = new native.NcclComm(1, 2, 1, ncclId, 60_000);
  const c = ncclCase(1, n);
  const x = Tensor.fromArray(c.reduceIn, [n], { dtype: 'f32', device: 'cuda:1' });
  const y = Tensor.zeros([n], { dtype: 'f32', device: 'cuda:1' });
  const graph = captureGraph('cuda:1', () => comm.allReduce(dtypeCode('f32'), n, x.storage, x.byteOffset, y.storage, y.byteOffset));
  for (let replay = 1; replay <= 2; replay++) {
    mem.barrier(1, `replay ${replay}`, 60_000);
    graph.launch();
    comm.wait(30_000);
    const got = y.toArray() as Float32Array;
    if (got.some((v, i) => v !== c.reduceSum[i])) throw new Error(`rank 1: replay ${replay} of the captured all-reduce gave wrong values`);
    y.storage.copyFromHost(new Uint8Array(n * 4), y.byteOffset);
  }
  graph.dispose();
  comm.dispose();
} catch (e) {
  mem.fail(1, e instanceof Error ? e.message : String(e));
} finally {
  mem.exit();
}
