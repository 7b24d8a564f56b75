// Lesson 13's attention: with prefix caching, the sequences of a decode step
// that hold the same cached prefix hold the same blocks, and the scheduler
// keeps them adjacent; the cascade decode (ops.flashCascadeDecode) reads each
// shared prefix's K/V once per step for all of them instead of once per
// sequence, and each sequence's own suffix as before (lesson 09's decode v3).
// Prefill steps, decode steps the kernel cannot run, and decode steps with no
// shared prefix (the op's plain variant, selected per step) go to the attention
// lesson 12 uses (lesson 09's kernels).
import { type DType, type Device, type Tensor, ops } from '@aios/engine-core';
import type { StepPlan } from '@aios/engine-core/engine/types.ts';
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
 * Whether two neighbours of a decode step hold the same first block: a shared prefix the cascade
 * reads once for both (the kernels look for exactly such runs; a step without one gains nothing).
 */
export function sharesPrefix(plan: StepPlan): boolean {
  const tables = plan.blockTables;
  if (plan.phase !== 'decode' || !tables) return false;
  for (let i = 1; i < tables.length; i++) {
    const first = tables[i]?.[0];
    if (first !== undefined && first === tables[i - 1]?.[0]) return true;
  }
  return false;
}

/** The op's variants (AttentionVariants): 0 the fallback's decode, 1 the cascade. */
const PLAIN_DECODE = 0;
const CASCADE_DECODE = 1;

/**
 * The attention op: decode steps (one query per sequence) through the cascade decode, everything
 * else through `fallback` (lesson 07's kernel when undefined). Its variants let a step without a
 * shared prefix (the throughput workload's every step) skip the cascade's group search and combine,
 * which cost device time even when they find no group: lesson 11's graph model captures both
 * variants and selects by sharesPrefix. The variant is the op's state: the last select() stands
 * (the cascade until the first), shared by every engine that holds this op. The workspace it asks
 * for covers both: the fallback's and the cascade's largest (partials of every shared and own split).
 * `stats`, on the CPU only, counts the keys read (reading them back costs a copy per call).
 */
export function cascadeAttentionOp(fallback: PagedAttentionOp | undefined, stats?: CascadeStats): PagedAttentionOp {
  const base = fallback ?? straightforwardAttention;
  let variant = CASCADE_DECODE;
  const op: PagedAttentionOp = (q: Tensor, k: Tensor, v: Tensor, meta, out, workspace) => {
    const [, qHeads, headDim] = q.shape as [number, number, number];
    if (!(variant === CASCADE_DECODE && meta.maxQLen === 1 && cascadeRuns(q.device, q.dtype, qHeads, k.shape[1]!, headDim))) return base(q, k, v, meta, out, workspace);
    if (!stats || q.device !== 'cpu') return ops.flashCascadeDecode(q, k, v, meta, out, workspace ? { workspace } : {});
    const counted = { keysRead: 0 };
    const result = ops.flashCascadeDecode(q, k, v, meta, out, { stats: counted });
    stats.calls++;
    stats.keysRead += counted.keysRead;
    stats.plainKeys += (meta.contextLens.toArray() as Int32Array).reduce((n, c) => n + c, 0);
    return result;
  };
  op.variants = {
    count: 2,
    of: (plan) => (sharesPrefix(plan) ? CASCADE_DECODE : PLAIN_DECODE),
    select: (v) => {
      if (v !== PLAIN_DECODE && v !== CASCADE_DECODE) throw new RangeError(`cascadeAttentionOp: no variant ${v}`);
      variant = v;
    },
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
