// Lesson 13: lesson 12's engine with the scheduler replaced by one that reuses
// cached prefixes, together with the block manager it needs (blocks shared by
// reference count, named by chained hashes, evicted least recently used). The
// runner, the model, the attention and the sampler stay.
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { type BatchedParts, batchedRecipe } from '@aios/lesson-07-batching';
import { lesson12Parts } from '@aios/lesson-12-sampling';

import { PrefixCachingBlockManager } from './prefix-block-manager.ts';
import { PrefixCachingScheduler } from './prefix-scheduler.ts';

export const lesson13Parts: BatchedParts = {
  ...lesson12Parts,
  blockManager: (numBlocks, blockSize) => new PrefixCachingBlockManager(numBlocks, blockSize),
  scheduler: (blocks, limits) => new PrefixCachingScheduler(blocks, limits),
};

export const recipe: Recipe = batchedRecipe('prefix-caching', 13, 'full KV blocks cached by a hash chained over the prefix, shared by reference count, evicted LRU: a request prefills only what is not cached', lesson13Parts);
