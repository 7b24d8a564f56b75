// Lesson 06: lesson 05's engine with per-sequence buffers replaced by one
// paged pool, sized from the memory the weights and a warm-up forward leave.
import { allocatorStats, deviceIndex, emptyCache, native } from '@aios/engine-core';
import type { EngineContext, Recipe } from '@aios/engine-core/engine/types.ts';
import { type StoreSetup, withKVStore } from '@aios/lesson-04-kv-cache';

import { type PoolSize, blocksIn, fixedPoolBytes, poolLine, poolShape } from './kv-pool.ts';
import { PagedKVStore } from './paged-cache.ts';

/**
 * What lesson 06 adds to the engine options (block size, memory share and kvCacheBytes come
 * from there, as for every lesson with a pool).
 */
export interface PagedOptions {
  /** Tokens of the warm-up forward that measures activation memory. */
  warmupTokens: number;
  /** KV pool bytes on the CPU backend (no free-memory query there); AIOS_KV_CACHE_BYTES overrides. */
  cpuPoolBytes: number;
}

export const DEFAULT_PAGED: PagedOptions = { warmupTokens: 2048, cpuPoolBytes: 256 * 2 ** 20 };

/**
 * The pool's size in blocks and why: AIOS_KV_CACHE_BYTES, the kvCacheBytes engine option, the CPU
 * default, or the GPU's free memory after weights and a warm-up forward, minus the share of the
 * card the gpuMemoryUtilization engine option leaves alone.
 */
export function poolBlocks(ctx: EngineContext, setup: StoreSetup, opts: PagedOptions): PoolSize {
  const { blockSize, gpuMemoryUtilization: util, kvCacheBytes } = ctx.options;
  let bytes: number, basis: string;
  const fixed = fixedPoolBytes(ctx.device, opts.cpuPoolBytes, kvCacheBytes);
  if (fixed) ({ bytes, basis } = fixed);
  else {
    // Memory our caching allocator still holds from engines this process disposed is free to this
    // one: handed back to the driver first, or the reading below would count it as taken. The
    // warm-up's own activations stay cached (taken), as they should.
    emptyCache(ctx.device);
    setup.warmUp(opts.warmupTokens);
    const { free, total } = native.memGetInfo(deviceIndex(ctx.device));
    // What is still free once the weights and the warm-up's activations (kept by our caching allocator) are
    // taken, minus the share of the card we leave alone.
    bytes = free - (1 - util) * total;
    const inUse = allocatorStats(ctx.device).bytesReserved;
    basis = `${(free / 2 ** 30).toFixed(1)} GiB free after weights and a ${opts.warmupTokens}-token warm-up (engine holds ${(inUse / 2 ** 30).toFixed(2)} GiB), minus ${(100 * (1 - util)).toFixed(0)}% of ${(total / 2 ** 30).toFixed(1)} GiB`;
  }
  return blocksIn(bytes, basis, poolShape(ctx), blockSize);
}

export function pagedRecipe(opts: PagedOptions = DEFAULT_PAGED): Recipe {
  return withKVStore('paged-kv-cache', 6, 'one paged KV pool sized from free memory; block tables', (ctx, setup) => {
    const { numBlocks, basis } = poolBlocks(ctx, setup, opts);
    const store = new PagedKVStore({
      numLayers: ctx.cfg.numLayers,
      kvHeads: ctx.cfg.numKvHeads,
      headDim: ctx.cfg.headDim,
      numBlocks,
      blockSize: ctx.options.blockSize,
      dtype: ctx.dtype,
      device: ctx.device,
      basis,
    });
    return store;
  }, (store) => (store instanceof PagedKVStore ? [poolLine(store.pool, store.opts.basis ?? 'size given')] : []));
}

export const recipe: Recipe = pagedRecipe();
