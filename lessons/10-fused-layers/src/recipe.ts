// Lesson 10: lesson 09's engine with the model replaced by a fused forward over a
// preallocated workspace (the scheduler, runner, pool, attention kernels and sampler stay).
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { type BatchedParts, batchedRecipe } from '@aios/lesson-07-batching';
import { lesson09Parts } from '@aios/lesson-09-flash-attention';

import { fusedStepModel } from './fused-model.ts';

export const lesson10Parts: BatchedParts = { ...lesson09Parts, model: fusedStepModel };

export const recipe: Recipe = batchedRecipe('fused-layers', 10, 'fused q/k/v and gate/up GEMMs, add+RMSNorm, SiLU*mul, q/k-norm+RoPE+KV-store; no allocation in the forward', lesson10Parts);
