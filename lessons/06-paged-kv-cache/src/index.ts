export { recipe, pagedRecipe, poolBlocks, DEFAULT_PAGED, type PagedOptions } from './recipe.ts';
export { BlockManager, OutOfBlocksError, slotOf } from './block-manager.ts';
export { PagedKVStore } from './paged-cache.ts';
export { KVPool, blocksIn, fixedPoolBytes, poolLine, poolShape, type PoolShape, type PoolSize } from './kv-pool.ts';
