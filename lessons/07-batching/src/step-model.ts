// The model as the batched runner sees it: one packed step in, the logits of
// the sampling sequences out. Lesson 07's is the plain Qwen3 forward of
// engine-core with packed attention; lesson 10 replaces it with a fused forward
// over a preallocated workspace.
import { Tensor, ops } from '@aios/engine-core';
import type { EngineContext } from '@aios/engine-core/engine/types.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';

import type { KVPool } from './kv-pool.ts';
import { PackedAttention, type PackedContext, type PagedAttentionOp } from './packed-attention.ts';
import type { StepInput } from './step-input.ts';

export interface StepModel {
  /** f32 logits [step.numSampled, vocab]: one row per sampling sequence, in plan order. */
  forward(step: StepInput, pool: KVPool): Tensor;
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

  forward(step: StepInput, pool: KVPool): Tensor {
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
