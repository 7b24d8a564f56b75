// The shared-memory collectives test (tp.test.ts): what each of the ranks sends, the same on
// every rank. Sizes larger than the collective buffers make them go in chunks.
import { Tensor } from '@aios/engine-core';
import type { DType } from '@aios/engine-core/dtype.ts';
import type { Collectives } from '@aios/engine-core/model/shard.ts';

export const CASE_N = 3000; // f32: 12,000 bytes, over 1 KiB slots: 12 chunks

export function partOf(rank: number, n = CASE_N): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + rank) * (rank + 1) + i * 1e-3);
}

/** Every rank runs this, in the same order; returns what it received. */
export function runCase(comm: Collectives): Record<string, Tensor> {
  const t = (data: Float32Array, dtype: DType) => Tensor.fromArray(data, [data.length], { dtype, device: 'cpu' });
  const f32 = t(partOf(comm.rank), 'f32');
  comm.allReduce(f32);
  const bf16 = t(partOf(comm.rank), 'bf16');
  comm.allReduce(bf16);
  const gathered = Tensor.empty([comm.size * CASE_N], { dtype: 'f32', device: 'cpu' });
  comm.allGather(t(partOf(comm.rank), 'f32'), gathered);
  const b = t(comm.rank === 1 ? partOf(7) : new Float32Array(CASE_N), 'f32');
  comm.broadcast(b, 1);
  return { f32, bf16, gathered, b };
}
