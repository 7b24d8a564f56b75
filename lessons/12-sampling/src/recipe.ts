// Lesson 12: lesson 11's engine with the sampler replaced by one that filters,
// penalizes and draws on the device and reads back only the chosen ids.
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { type BatchedParts, batchedRecipe } from '@aios/lesson-07-batching';
import { lesson11Parts } from '@aios/lesson-11-cuda-graphs';

import { GpuSampler } from './gpu-sampler.ts';

export const lesson12Parts: BatchedParts = { ...lesson11Parts, sampler: (ctx) => new GpuSampler(ctx.device, ctx.cfg.vocabSize) };

export const recipe: Recipe = batchedRecipe('sampling', 12, 'sampling on the device: penalties, top-k/top-p/min-p, Philox seeds, log-probs; only the ids read back', lesson12Parts);
