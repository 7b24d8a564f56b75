// Lesson 09: lesson 08's engine with the attention op replaced by our own
// FlashAttention kernels (the scheduler, runner, pool and sampler stay).
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { type BatchedParts, batchedRecipe } from '@aios/lesson-07-batching';
import { lesson08Parts } from '@aios/lesson-08-continuous-batching';

import { flashAttention } from './flash-attention.ts';

export const lesson09Parts: BatchedParts = { ...lesson08Parts, attention: flashAttention };

export const recipe: Recipe = batchedRecipe('flash-attention', 9, 'our own FlashAttention: tiled prefill on tensor cores, paged split-KV decode', lesson09Parts);
