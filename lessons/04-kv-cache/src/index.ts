export { recipe, withKVStore, type StoreSetup } from './recipe.ts';
export { IncrementalRunner } from './incremental-runner.ts';
export { CachedAttention, type CacheContext, type KVStore, type KVView } from './kv-store.ts';
export { ConcatKVStore } from './concat-cache.ts';
