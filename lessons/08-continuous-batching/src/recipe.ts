// Lesson 08: lesson 07's engine with the static-batch scheduler replaced by a
// continuous-batching one (the runner, the pool and the sampler stay).
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { type BatchedParts, batchedRecipe, lesson07Parts } from '@aios/lesson-07-batching';

import { ContinuousBatchingScheduler } from './continuous-scheduler.ts';

export const lesson08Parts: BatchedParts = {
  ...lesson07Parts,
  scheduler: (blocks, limits) => new ContinuousBatchingScheduler(blocks, limits),
};

export const recipe: Recipe = batchedRecipe('continuous-batching', 8, 'admit and retire sequences every step; preempt (recompute) when blocks run out', lesson08Parts);
