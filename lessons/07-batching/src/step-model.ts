// The model as the batched runner sees it: one packed step in, the logits of
// the sampling sequences out. Lesson 07's is the plain Qwen3 forward of
// engine-core with packed attention; lesson 10 replaces it with a fused forward
// over a preallocated workspace.
import { Tensor, ops } from '@aios/engine-core';
import type { EngineContext, StepPlan } from '@aios/engine-core/engine/types.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';


import type { KVPool } from './kv-pool.ts';
import { PackedAttention, type PackedContext, type PagedAttentionOp } from './packed-attention.ts';
import type { StepInput, StepInputBuffer } from './step-input.ts';

export interface StepModel {
  /**
   * f32 logits [n, vocab]: one row per sequence of the plan that samples, in plan order. The
   * model packs the plan into `input` itself (a graph-replaying model wants its own layout).
   */
  forward(plan: StepPlan, input: StepInputBuffer, pool: KVPool): Tensor;
  /** Called once the runner has allocated the pool (lesson 11 captures its graphs here). */
  prepare?(pool: KVPool, input: StepInputBuffer): void;
  /** Lines for EngineParts.describe. */
  describe?(): string[];
  dispose(): void;
}

/** Builds the model for a recipe, given the attention op the recipe chose (undefined: lesson 07's kernel). */
export type StepModelFactory = (ctx: EngineContext, attention: PagedAttentionOp | undefined) => StepModel;

/** engine-core's Qwen3 forward, op by op, attention through the block tables; the LM head on the last rows only. */
export class PlainStepModel implements StepModel {
  readonly model: Qwen3Model<PackedContext>;

  constructor(readonly ctx: EngineContext, attention: PagedAttentionOp | undefined) {
    this.model = Qwen3Model.load<PackedContext>(ctx.modelDir, { device: ctx.device, dtype: ctx.dtype, attention: new PackedAttention(attention) });
  }

  forward(plan: StepPlan, input: StepInputBuffer, pool: KVPool): Tensor {
    return this.forwardStep(input.build(plan), pool);
  }

  forwardStep(step: StepInput, pool: KVPool): Tensor {
    const hidden = this.model.forward(step.ids, { positions: step.positions, slotMapping: step.slotMapping, meta: step.meta, pool });
    try {
      // A step of prefill chunks that all stop short of their last token samples nothing.
      if (step.numSampled === 0) return Tensor.empty([0, this.ctx.cfg.vocabSize], { dtype: 'f32', device: this.ctx.device });
      const last = ops.gatherRows(hidden, step.lastTokenIndex);
      try {
        return this.model.logits(last);
      } finally {
        last.dispose();
      }
    } finally {
      hidden.dispose();
    }
  }

  dispose(): void {
    this.model.dispose();
  }
}

export const plainStepModel: StepModelFactory = (ctx, attention) => new PlainStepModel(ctx, attention);
