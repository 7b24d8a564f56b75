// Lesson 11: lesson 10's engine with the model replaced by one that replays the
// decode step as a CUDA graph (the fused forward inside it stays lesson 10's).
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { type BatchedParts, batchedRecipe } from '@aios/lesson-07-batching';
import { lesson10Parts } from '@aios/lesson-10-fused-layers';

import { graphStepModel } from './graph-model.ts';

export const lesson11Parts: BatchedParts = { ...lesson10Parts, model: graphStepModel };

export const recipe: Recipe = batchedRecipe('cuda-graphs', 11, 'decode captured once per batch-size bucket as a CUDA graph and replayed', lesson11Parts);
