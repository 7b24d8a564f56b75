// The baseline model runner: every step feeds the whole sequence so far through
// the model and keeps the last row of logits. Nothing is remembered between
// steps, so step n costs a forward over n tokens: quadratic work in total.
import type { ModelRunner, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { Tensor } from '@aios/engine-core';
import type { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';

export class RecomputeRunner implements ModelRunner {
  constructor(readonly model: Qwen3Model) {}

  run(plan: StepPlan): Tensor {
    if (plan.sequences.length !== 1) throw new Error('RecomputeRunner runs one sequence at a time');
    const seq = plan.sequences[0]!;
    return this.model.forwardLogits(seq.allIds, { lastOnly: true });
  }

  release(): void {}

  dispose(): void {
    this.model.dispose();
  }
}
