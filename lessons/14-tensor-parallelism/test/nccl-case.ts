// The 2-rank NCCL test (tp.gpu.test.ts, rank 0; nccl-rank.ts, nccl-graph-rank.ts and peer-rank.ts, rank 1):
// the inputs and expected outputs, the same on both ranks, and the calls both ranks make in the
// same order. Values are small integers and halves, so sums are exact in f32 and bf16 alike.
import { Tensor, captureGraph, type native, ops } from '@aios/engine-core';
import { dtypeCode } from '@aios/engine-core/dtype.ts';
import { mulberry32 } from '@aios/engine-core/random.ts';

import type { NcclCollectives } from '../src/collectives.ts';
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

/**
 * Both ranks' side of the peer all-reduce test, on cuda:`rank` (the other rank runs the same
 * calls): the collectives with the peer path set up, then (1) bf16 all-reduces of three sizes
 * back to back with one wait (the staging halves alternate; 8 elements is less than one
 * thread's vector, 1,048,584 more than one block per SM can take in one pass), exact sums;
 * (2) seeded random bf16 values through the peer path and through NCCL: the same bits; the
 * all-reduce fused with addRmsnorm against NCCL's then ops.addRmsnorm; (3) one captured in a
 * CUDA graph and replayed twice (the epochs live on the device). `check` gets
 * (what, got, want) and throws on a difference.
 */
export function peerAllReduceCase(coll: NcclCollectives, rank: number, check: (what: string, got: ArrayLike<number>, want: ArrayLike<number>) => void): void {
  const device = `cuda:${rank}` as const;
  coll.usePeer(rank, 'peer');
  const exact = [8, 3 * 4096, 256 * 4096 + 8].map((n) => {
    const c = ncclCase(rank, n);
    return { c, x: Tensor.fromArray(c.reduceIn, [n], { dtype: 'bf16', device }) };
  });
  for (const { x } of exact) coll.allReducePeer(x);
  coll.wait();
  for (const { c, x } of exact) {
    check(`the bf16 sum of ${x.numel} elements`, x.toArray() as Float32Array, c.reduceSum);
    x.dispose();
  }

  const n = 256 * 4096;
  const random = (r: number) => {
    const next = mulberry32(1234 + r);
    return Float32Array.from({ length: n }, () => 4 * next() - 2);
  };
  const a = Tensor.fromArray(random(rank), [n], { dtype: 'bf16', device });
  const b = a.clone();
  coll.allReducePeer(a);
  coll.allReduceNccl(b);
  coll.wait();
  check('random bf16 values: the peer path against NCCL (bits)', a.toArray() as Float32Array, b.toArray() as Float32Array);
  a.dispose();
  b.dispose();

  // The all-reduce fused with addRmsnorm against NCCL's all-reduce then ops.addRmsnorm: the same
  // residual bits; the normalized rows within bf16 rounding (the sum of squares adds in another order).
  const rows = 37, dim = 1024;
  const next = mulberry32(99); // the same residual and weight on both ranks
  const resHost = Float32Array.from({ length: rows * dim }, () => 2 * next() - 1);
  const wHost = Float32Array.from({ length: dim }, () => 0.5 + next());
  const x1 = Tensor.fromArray(random(rank).subarray(0, rows * dim), [rows, dim], { dtype: 'bf16', device });
  const x2 = x1.clone();
  const res1 = Tensor.fromArray(resHost, [rows, dim], { dtype: 'bf16', device }), res2 = res1.clone();
  const weight = Tensor.fromArray(wHost, [dim], { dtype: 'bf16', device });
  const out1 = Tensor.empty([rows, dim], { dtype: 'bf16', device }), out2 = Tensor.empty([rows, dim], { dtype: 'bf16', device });
  if (!coll.allReduceAddRmsnorm(x1, res1, weight, 1e-6, out1)) throw new Error(`rank ${rank}: the fused all-reduce + addRmsnorm did not take [${rows}, ${dim}] bf16`);
  coll.allReduceNccl(x2);
  ops.addRmsnorm(x2, res2, weight, 1e-6, out2);
  coll.wait();
  check('fused all-reduce + addRmsnorm: the residual (bits)', res1.toArray() as Float32Array, res2.toArray() as Float32Array);
  const o1 = out1.toArray() as Float32Array, o2 = out2.toArray() as Float32Array;
  const far = o1.reduce((n, v, i) => n + (Math.abs(v - o2[i]!) > 1e-2 * Math.max(1, Math.abs(o2[i]!)) ? 1 : 0), 0);
  check('fused all-reduce + addRmsnorm: normalized elements off by more than bf16 rounding', [far], [0]);
  for (const t of [x1, x2, res1, res2, weight, out1, out2]) t.dispose();

  const c = ncclCase(rank, 4096);
  const y = Tensor.fromArray(c.reduceIn, [4096], { dtype: 'f32', device });
  const graph = captureGraph(device, () => coll.allReducePeer(y));
  try {
    for (let replay = 1; replay <= 2; replay++) {
      y.write(c.reduceIn);
      graph.launch();
      coll.wait(30_000);
      check(`replay ${replay} of the captured f32 peer all-reduce`, y.toArray() as Float32Array, c.reduceSum);
    }
  } finally {
    graph.dispose();
    y.dispose();
  }
}
