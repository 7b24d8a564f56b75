export { recipe, lesson13Parts } from './recipe.ts';
export { PrefixCachingBlockManager, hashBlock, blockHashes, type BlockHash, type CachedPrefix } from './prefix-block-manager.ts';
export { PrefixCachingScheduler } from './prefix-scheduler.ts';
