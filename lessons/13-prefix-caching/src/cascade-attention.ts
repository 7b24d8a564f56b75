// Lesson 13's attention: with prefix caching, the sequences of a decode step
// that hold the same cached prefix hold the same blocks, and the scheduler
// keeps them adjacent; the cascade decode (ops.flashCascadeDecode) reads each
// shared prefix's K/V once per step for all of them instead of once per
// sequence, and each sequence's own suffix as before (lesson 09's decode v3).
// Prefill steps, and decode steps the kernel cannot run, go to the attention
// lesson 12 uses (lesson 09's kernels).
import { type DType, type Device, type Tensor, ops } from '@aios/engine-core';
import { type PagedAttentionOp, straightforwardAttention } from '@aios/lesson-07-batching';

/** Head sizes the CUDA cascade kernels are built for (the CPU reference runs any). */
export const CASCADE_HEAD_DIMS: readonly number[] = [64, 128];
/** Query heads per KV head the CUDA kernels hold (decode v3's 16 rows). */
export const CASCADE_MAX_GROUP = 16;

/** Whether the cascade decode runs a decode step of these shapes on `device`. */
export function cascadeRuns(device: Device, dtype: DType, qHeads: number, kvHeads: number, headDim: number): boolean {
  if (device === 'cpu') return true;
  return (dtype === 'bf16' || dtype === 'f16') && CASCADE_HEAD_DIMS.includes(headDim) && qHeads / kvHeads <= CASCADE_MAX_GROUP;
}

/** What the cascade read on the CPU, per layer call summed (tests): keys per KV head, and what the plain decode would read. */
export interface CascadeStats {
  calls: number;
  keysRead: number;
  plainKeys: number;
}

/**
 * The attention op: decode steps (one query per sequence) through the cascade decode, everything
 * else through `fallback` (lesson 07's kernel when undefined). The workspace it asks for covers
 * both: the fallback's and the cascade's largest (partials of every shared and own split).
 * `stats`, on the CPU only, counts the keys read (reading them back costs a copy per call).
 */
export function cascadeAttentionOp(fallback: PagedAttentionOp | undefined, stats?: CascadeStats): PagedAttentionOp {
  const base = fallback ?? straightforwardAttention;
  const op: PagedAttentionOp = (q: Tensor, k: Tensor, v: Tensor, meta, out, workspace) => {
    const [, qHeads, headDim] = q.shape as [number, number, number];
    if (!(meta.maxQLen === 1 && cascadeRuns(q.device, q.dtype, qHeads, k.shape[1]!, headDim))) return base(q, k, v, meta, out, workspace);
    if (!stats || q.device !== 'cpu') return ops.flashCascadeDecode(q, k, v, meta, out, workspace ? { workspace } : {});
    const counted = { keysRead: 0 };
    const result = ops.flashCascadeDecode(q, k, v, meta, out, { stats: counted });
    stats.calls++;
    stats.keysRead += counted.keysRead;
    stats.plainKeys += (meta.contextLens.toArray() as Int32Array).reduce((n, c) => n + c, 0);
    return result;
  };
  op.workspaceBytes = (s) => {
    let bytes = base.workspaceBytes?.(s) ?? 0;
    if (s.device === 'cpu' || !cascadeRuns(s.device, s.dtype, s.qHeads, s.kvHeads, s.headDim)) return bytes;
    // The own splits' plan depends on the batch (lesson 09's plan), so every batch size is asked.
    for (let n = 1; n <= s.maxNumSeqs; n++)
      bytes = Math.max(bytes, ops.flashCascadePlan({ device: s.device, numSeqs: n, numTokens: n, qHeads: s.qHeads, kvHeads: s.kvHeads, headDim: s.headDim, maxContextLen: s.maxContextLen }).workspaceBytes);
    return bytes;
  };
  return op;
}
