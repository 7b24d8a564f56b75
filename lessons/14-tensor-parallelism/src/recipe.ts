// Lesson 14: lesson 13's engine split over N ranks (--tp N): the model is replaced
// by one that runs on a rank's shard and meets the other ranks through collectives,
// and the runner by one that hands each step to the other ranks. The scheduler (lesson
// 13's, with its prefix cache: it runs on rank 0 only, the other ranks follow its
// plans), the pool's design, the attention kernels and lesson 12's sampler (on rank 0,
// over the gathered logits) stay.
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { type BatchedParts, BatchedRunner, batchedRecipe } from '@aios/lesson-07-batching';
import { lesson13Parts } from '@aios/lesson-13-prefix-caching';

import { tensorParallelModel } from './model.ts';
import { ablatedCollectives } from './parallel-hooks.ts';
import { RankGroup } from './rank-group.ts';
import { ShardRunner } from './shard-runner.ts';
import { StepTrace, traceEnabled } from './step-trace.ts';

/** Where the worker threads find these parts (they import this module). */
const PARTS = { module: import.meta.url, name: 'lesson14Parts' };

export const lesson14Parts: BatchedParts = {
  ...lesson13Parts,
  model: tensorParallelModel,
  runner: (ctx, attention, model) => {
    if (ctx.options.tensorParallelSize === 1) return new BatchedRunner(ctx, attention, model);
    const group = RankGroup.start(ctx, PARTS);
    try {
      return new ShardRunner(group.ctx, attention, model, group, traceEnabled() ? new StepTrace(group.mem, 0) : undefined);
    } catch (e) {
      try {
        group.abort(`rank 0 could not start: ${e instanceof Error ? e.message : String(e)}`);
      } catch (stopError) {
        // The start's error says what went wrong; the stop's (a bounded NCCL teardown) goes with it.
        if (e instanceof Error) e.message += `; stopping the group also failed: ${stopError instanceof Error ? stopError.message : String(stopError)}`;
      }
      throw e;
    }
  },
};

export const recipe: Recipe = {
  ...batchedRecipe('tensor-parallelism', 14, 'the model split over N GPUs (--tp N): column- and row-parallel layers, vocab-parallel embedding and LM head, NCCL all-reduce', lesson14Parts),
  tensorParallel: true,
  unrecordable: () => (ablatedCollectives().size > 0 ? `AIOS_TP_ABLATE=${process.env.AIOS_TP_ABLATE} leaves collectives out of every step (a timing experiment: its tokens are garbage)` : undefined),
};
