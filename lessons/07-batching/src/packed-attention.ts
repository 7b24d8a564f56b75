// Attention for a packed step: store this step's K/V rows into the pool at
// their slots, then attend through the block tables. Prefill sequences,
// decode sequences and prefills over a cached prefix all go through the same
// two calls; nothing here loops over sequences in JavaScript.
import type { StepPlan } from '@aios/engine-core/engine/types.ts';
import { type DType, type Device, type Tensor, ops } from '@aios/engine-core';
import type { AttentionBackend, ForwardContext } from '@aios/engine-core/model/qwen3.ts';
import type { PagedAttentionMeta } from '@aios/engine-core/ops.ts';

import type { KVPool } from './kv-pool.ts';

/** What a packed forward knows beyond positions: where each new token's K/V goes, and the step's sequences. */
export interface PackedContext extends ForwardContext {
  slotMapping: Tensor;
  meta: PagedAttentionMeta;
  pool: KVPool;
}

/**
 * The attention op a packed step uses, writing into `out` when given one; lesson 09 brings
 * faster ones with the same contract. An op that needs scratch memory says how much
 * (`workspaceBytes`, the most any step within the limits asks for) and takes it as `workspace`,
 * so a forward that must not allocate (lesson 10's) can hold it.
 */
export interface PagedAttentionOp {
  (q: Tensor, kCache: Tensor, vCache: Tensor, meta: PagedAttentionMeta, out?: Tensor, workspace?: Tensor): Tensor;
  workspaceBytes?: (shape: { device: Device; dtype: DType; maxNumSeqs: number; maxContextLen: number; qHeads: number; kvHeads: number; headDim: number }) => number;
  /** An op whose kernels depend on more than the step's shapes (lesson 13's cascade): see AttentionVariants. */
  variants?: AttentionVariants;
}

/**
 * Kernel choices an attention op makes from what a step holds rather than its shapes (lesson 13:
 * the cascade decode when sequences share a prefix, the plain decode when none do). A captured
 * graph (lesson 11) bakes one choice in, so the graph model captures each layout once per variant
 * and, for each step, asks which variant it needs and selects it before running or replaying.
 */
export interface AttentionVariants {
  /** Variants 0..count-1. */
  readonly count: number;
  /** The variant a step needs (from its plan; the same answer on every tensor-parallel rank). */
  of(plan: StepPlan): number;
  /** Selects the variant the op's next calls run. */
  select(variant: number): void;
}

/** Lessons 07-08: the straightforward kernel, one thread block per (token, KV head). */
export const straightforwardAttention: PagedAttentionOp = (q, k, v, meta, out) => ops.pagedAttention(q, k, v, meta, out);

export class PackedAttention implements AttentionBackend<PackedContext> {
  constructor(
    readonly attend_: PagedAttentionOp = straightforwardAttention,
    readonly name = 'paged',
  ) {}

  attend(layer: number, q: Tensor, k: Tensor, v: Tensor, ctx: PackedContext): Tensor {
    const kCache = ctx.pool.k(layer), vCache = ctx.pool.v(layer);
    ops.scatterRows(k, ctx.slotMapping, kCache);
    ops.scatterRows(v, ctx.slotMapping, vCache);
    return this.attend_(q, kCache, vCache, ctx.meta);
  }
}
