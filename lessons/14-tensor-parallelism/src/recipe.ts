// Lesson 14: lesson 13's engine split over N ranks (--tp N): the model is replaced
// by one that runs on a rank's shard and meets the other ranks through collectives,
// and the runner by one that hands each step to the other ranks. The scheduler (lesson
// 13's, with its prefix cache: it runs on rank 0 only, the other ranks follow its
// plans), the pool's design, the attention kernels and lesson 12's sampler stay; on
// several ranks a step whose rows have only a temperature (or none) samples by racing
// each rank's vocabulary slice (shard-race.ts), any other on rank 0 over the gathered
// logits.
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { envChoice } from '@aios/engine-core/env.ts';
import { shardLayout } from '@aios/engine-core/model/shard.ts';
import { type BatchedParts, BatchedRunner, batchedRecipe } from '@aios/lesson-07-batching';
import { lesson13Parts } from '@aios/lesson-13-prefix-caching';

import { tensorParallelModel } from './model.ts';
import { ablatedCollectives } from './parallel-hooks.ts';
import { RankGroup } from './rank-group.ts';
import { ShardRunner } from './shard-runner.ts';
import { ShardRaceSampler, raceSlotFor } from './shard-race.ts';
import { StepTrace, traceEnabled } from './step-trace.ts';

/**
 * Whether the ranks race their vocabulary slices (AIOS_TP_SAMPLE=race, the default) or always gather
 * the logits for rank 0's sampler (=gather: the comparison). The race needs slices that start at a
 * multiple of 4 (one random-number call per 4 entries).
 */
export function shardRaceEnabled(size: number, cfg: Parameters<typeof shardLayout>[0]): boolean {
  return envChoice('AIOS_TP_SAMPLE', ['race', 'gather']) === 'race' && shardLayout(cfg, 0, size).vocab % 4 === 0;
}

/** Where the worker threads find these parts (they import this module). */
const PARTS = { module: import.meta.url, name: 'lesson14Parts' };

export const lesson14Parts: BatchedParts = {
  ...lesson13Parts,
  model: tensorParallelModel,
  sampler: (ctx) => {
    const inner = lesson13Parts.sampler!(ctx); // lesson 12's
    const size = ctx.options.tensorParallelSize;
    return size > 1 && shardRaceEnabled(size, ctx.cfg) ? new ShardRaceSampler(inner, raceSlotFor(ctx), size) : inner;
  },
  runner: (ctx, attention, model) => {
    if (ctx.options.tensorParallelSize === 1) return new BatchedRunner(ctx, attention, model);
    const group = RankGroup.start(ctx, PARTS);
    try {
      return new ShardRunner(group.ctx, attention, model, group, traceEnabled() ? new StepTrace(group.mem, 0) : undefined, raceSlotFor(ctx));
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
