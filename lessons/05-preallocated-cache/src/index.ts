export { recipe } from './recipe.ts';
export { PreallocatedKVStore } from './preallocated-cache.ts';
