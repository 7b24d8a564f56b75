// Lesson 13: lesson 12's engine with the scheduler replaced by one that reuses
// cached prefixes, together with the block manager it needs (blocks shared by
// reference count, named by chained hashes, evicted least recently used), and
// the decode attention replaced by the cascade decode, which reads a prefix the
// step's sequences share once for all of them. The runner, the model and the
// sampler stay.
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { type BatchedParts, batchedRecipe } from '@aios/lesson-07-batching';
import { lesson12Parts } from '@aios/lesson-12-sampling';

import { cascadeAttentionOp } from './cascade-attention.ts';
import { PrefixCachingBlockManager } from './prefix-block-manager.ts';
import { PrefixCachingScheduler } from './prefix-scheduler.ts';

/** Prefix caching alone: lesson 12's attention (each sequence reads its whole context). */
export const prefixCachingParts: BatchedParts = {
  ...lesson12Parts,
  blockManager: (numBlocks, blockSize) => new PrefixCachingBlockManager(numBlocks, blockSize),
  scheduler: (blocks, limits) => new PrefixCachingScheduler(blocks, limits),
};

/**
 * Lesson 13: prefix caching, and the cascade decode reading each shared prefix once per step
 * (AIOS_CASCADE=0 in the environment leaves lesson 12's attention: an A/B run of the same bench).
 */
export const lesson13Parts: BatchedParts =
  process.env.AIOS_CASCADE === '0' ? prefixCachingParts : { ...prefixCachingParts, attention: cascadeAttentionOp(lesson12Parts.attention) };

export const recipe: Recipe = batchedRecipe('prefix-caching', 13, 'full KV blocks cached by a hash chained over the prefix, shared by reference count, evicted LRU: a request prefills only what is not cached; a decode step reads a shared prefix once (cascade)', lesson13Parts);
/** Lesson 13 without the cascade decode: the comparison its tests and the README make. */
export const recipeWithoutCascade: Recipe = batchedRecipe('prefix-caching-plain-decode', 13, 'prefix caching with lesson 12\'s decode attention', prefixCachingParts);
