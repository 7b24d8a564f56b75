// The shared-memory collectives test (tp.test.ts): what each of the ranks sends, the same on
// every rank. Sizes larger than the collective buffers make them go in chunks.
import { Tensor } from '@aios/engine-core';
import type { DType } from '@aios/engine-core/dtype.ts';
import type { RankCollectives } from '../src/collectives.ts';

export const CASE_N = 3000; // f32: 12,000 bytes, over 1 KiB slots: 12 chunks

export function partOf(rank: number, n = CASE_N): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + rank) * (rank + 1) + i * 1e-3);
}

/** Votes: rank 1 refuses the second, ranks 1 and 2 the fourth; the others pass. */
export const VOTES = 5;
export const refuses = (rank: number, vote: number): boolean => (vote === 2 && rank === 1) || (vote === 4 && rank >= 1);

/** Every rank runs this, in the same order; returns what it received, and what each vote gave. */
export function runCase(comm: RankCollectives): { f32: Tensor; bf16: Tensor; gathered: Tensor; b: Tensor; votes: { ok: boolean; refusedBy?: number }[] } {
  const t = (data: Float32Array, dtype: DType) => Tensor.fromArray(data, [data.length], { dtype, device: 'cpu' });
  const f32 = t(partOf(comm.rank), 'f32');
  comm.allReduce(f32);
  const bf16 = t(partOf(comm.rank), 'bf16');
  comm.allReduce(bf16);
  const gathered = Tensor.empty([comm.size * CASE_N], { dtype: 'f32', device: 'cpu' });
  comm.allGather(t(partOf(comm.rank), 'f32'), gathered);
  const b = t(comm.rank === 1 ? partOf(7) : new Float32Array(CASE_N), 'f32');
  comm.broadcast(b, 1);
  const votes = Array.from({ length: VOTES }, (_, v) => comm.agree(!refuses(comm.rank, v + 1), `vote ${v + 1}`));
  const expected = (v: number) => !Array.from({ length: comm.size }, (_, r) => refuses(r, v)).some(Boolean);
  if (votes.some((r, v) => r.ok !== expected(v + 1))) throw new Error(`rank ${comm.rank} saw the votes ${JSON.stringify(votes)}`);
  return { f32, bf16, gathered, b, votes };
}
