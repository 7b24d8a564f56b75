export { recipe, recipeWithoutCascade, lesson13Parts, prefixCachingParts } from './recipe.ts';
export { cascadeAttentionOp, cascadeRuns, CASCADE_HEAD_DIMS, CASCADE_MAX_GROUP, type CascadeStats } from './cascade-attention.ts';
export { PrefixCachingBlockManager, hashBlock, blockHashes, type BlockHash, type CachedPrefix } from './prefix-block-manager.ts';
export { PrefixCachingScheduler } from './prefix-scheduler.ts';
