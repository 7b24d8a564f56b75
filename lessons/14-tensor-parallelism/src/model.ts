// Lesson 14's model: lesson 11's (decode replayed from CUDA graphs over lesson
// 10's fused forward) with the tensor-parallel hooks, on a rank's shard. Without
// a shard (one rank) it is lesson 11's model unchanged. AIOS_TP_EAGER=1 runs the
// ranks' decode steps eagerly (lesson 10's forward with the hooks, no graphs): the
// way to tell a capture problem from a sharding one.
import type { StepModel, StepModelFactory } from '@aios/lesson-07-batching';
import { FusedStepModel } from '@aios/lesson-10-fused-layers';
import { GraphStepModel, graphStepModel } from '@aios/lesson-11-cuda-graphs';

import { TensorParallelHooks } from './parallel-hooks.ts';
import { startupTimeoutMs } from './rank-group.ts';

export const tensorParallelModel: StepModelFactory = (ctx, attention) => {
  if (!ctx.shard) return graphStepModel(ctx, attention);
  const hooks = new TensorParallelHooks(ctx);
  let model: StepModel;
  try {
    model = process.env.AIOS_TP_EAGER === '1' ? new FusedStepModel(ctx, attention, hooks) : new GraphStepModel(ctx, attention, hooks);
  } catch (e) {
    hooks.dispose();
    throw e;
  }
  try {
    // Every rank has its weights before any rank runs a forward: a rank that failed to load
    // stops the others here, with its message, before a collective waits for it.
    ctx.shard.comm.barrier('weights loaded', startupTimeoutMs());
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
};
