export { recipe, pagedRecipe, poolBlocks, DEFAULT_PAGED, poolLine, type PagedOptions } from './recipe.ts';
export { BlockManager, OutOfBlocksError } from './block-manager.ts';
export { PagedKVStore } from './paged-cache.ts';
export { KVPool, fixedPoolBytes, type PoolShape } from './kv-pool.ts';
