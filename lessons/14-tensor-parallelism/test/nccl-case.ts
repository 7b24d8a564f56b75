// The 2-rank NCCL test (tp.gpu.test.ts, rank 0; nccl-rank.ts and nccl-graph-rank.ts, rank 1):
// the inputs and expected outputs, the same on both ranks, and the calls both ranks make in the
// same order. Values are small integers and halves, so sums are exact in f32 and bf16 alike.
import { Tensor, captureGraph, type native } from '@aios/engine-core';
import { dtypeCode } from '@aios/engine-core/dtype.ts';

import type { GroupMemory } from '../src/group-memory.ts';

type NcclComm = InstanceType<typeof native.NcclComm>;

export function ncclCase(rank: number, n: number) {
  const of = (r: number) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + r * 13) % 64) - 32 + 0.5 * r);
  const a0 = of(0), a1 = of(1);
  const gatherOf = (r: number) => Float32Array.from({ length: n }, (_, i) => r * 1000 + (i % 997));
  const gathered = new Float32Array(2 * n);
  gathered.set(gatherOf(0), 0);
  gathered.set(gatherOf(1), n);
  return {
    reduceIn: rank === 0 ? a0 : a1,
    reduceSum: a0.map((v, i) => v + a1[i]!),
    gatherIn: gatherOf(rank),
    gathered,
    broadcastBf16: Float32Array.from({ length: n }, (_, i) => (i % 100) - 50),
  };
}

/**
 * Rank `rank`'s side of the collectives test, on cuda:`rank`: an f32 all-reduce in place, an f32
 * all-gather, a bf16 broadcast from rank 0; waits for them. Returns the case and the three results.
 */
export function ncclCollectives(comm: NcclComm, rank: number, n: number) {
  const device = `cuda:${rank}` as const;
  const c = ncclCase(rank, n);
  const x = Tensor.fromArray(c.reduceIn, [n], { dtype: 'f32', device });
  comm.allReduce(dtypeCode('f32'), n, x.storage, x.byteOffset, x.storage, x.byteOffset);
  const mine = Tensor.fromArray(c.gatherIn, [n], { dtype: 'f32', device });
  const all = Tensor.empty([2 * n], { dtype: 'f32', device });
  comm.allGather(dtypeCode('f32'), n, 2, mine.storage, mine.byteOffset, all.storage, all.byteOffset);
  const b = rank === 0 ? Tensor.fromArray(c.broadcastBf16, [n], { dtype: 'bf16', device }) : Tensor.zeros([n], { dtype: 'bf16', device });
  comm.broadcast(dtypeCode('bf16'), n, 0, b.storage, b.byteOffset, b.storage, b.byteOffset);
  comm.wait();
  return { c, x, all, b };
}

/**
 * Rank `rank`'s side of the CUDA-graph test, on cuda:`rank`: captures an f32 all-reduce into a
 * graph, then twice meets the other rank and replays it, handing `check` the sums it read back
 * (and what they should be), and zeroes the output. Returns the graph (the caller frees it).
 */
export function replayCapturedAllReduce(comm: NcclComm, mem: GroupMemory, rank: number, n: number, check: (got: Float32Array, want: Float32Array, replay: number) => void) {
  const device = `cuda:${rank}` as const;
  const c = ncclCase(rank, n);
  const x = Tensor.fromArray(c.reduceIn, [n], { dtype: 'f32', device });
  const y = Tensor.zeros([n], { dtype: 'f32', device });
  const graph = captureGraph(device, () => comm.allReduce(dtypeCode('f32'), n, x.storage, x.byteOffset, y.storage, y.byteOffset));
  for (let replay = 1; replay <= 2; replay++) {
    mem.barrier(rank, `replay ${replay}`, 60_000);
    graph.launch();
    comm.wait(30_000);
    check(y.toArray() as Float32Array, c.reduceSum, replay);
    y.storage.copyFromHost(new Uint8Array(n * 4), y.byteOffset);
  }
  return graph;
}
