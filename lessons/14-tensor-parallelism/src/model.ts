// Lesson 14's model: lesson 11's (decode replayed from CUDA graphs over lesson
// 10's fused forward) with the tensor-parallel hooks, on a rank's shard. Without
// a shard (one rank) it is lesson 11's model unchanged.
import type { StepModelFactory } from '@aios/lesson-07-batching';
import { GraphStepModel, graphStepModel } from '@aios/lesson-11-cuda-graphs';

import { TensorParallelHooks } from './parallel-hooks.ts';
import { startupTimeoutMs } from './rank-group.ts';

export const tensorParallelModel: StepModelFactory = (ctx, attention) => {
  if (!ctx.shard) return graphStepModel(ctx, attention);
  const model = new GraphStepModel(ctx, attention, new TensorParallelHooks(ctx));
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
