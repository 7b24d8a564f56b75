// Lesson 06: lesson 05's engine with per-sequence buffers replaced by one
// paged pool, sized from the memory the weights and a warm-up forward leave.
import { allocatorStats, native, deviceIndex } from '@aios/engine-core';
import type { EngineContext, Recipe } from '@aios/engine-core/engine/types.ts';
import { type StoreSetup, withKVStore } from '@aios/lesson-04-kv-cache';

import { KVPool, fixedPoolBytes } from './kv-pool.ts';
import { PagedKVStore } from './paged-cache.ts';

export interface PagedOptions {
  blockSize: number;
  /** Fraction of the GPU's memory the engine may use in all (weights, activations, KV pool), as vLLM's gpu_memory_utilization. */
  gpuMemoryUtilization: number;
  /** Tokens of the warm-up forward that measures activation memory. */
  warmupTokens: number;
  /** KV pool bytes on the CPU backend (no free-memory query there); AIOS_KV_CACHE_BYTES overrides. */
  cpuPoolBytes: number;
}

export const DEFAULT_PAGED: PagedOptions = { blockSize: 16, gpuMemoryUtilization: 0.9, warmupTokens: 2048, cpuPoolBytes: 256 * 2 ** 20 };

/** The pool's size in blocks and why: AIOS_KV_CACHE_BYTES, the CPU default, or the GPU's free memory after weights and a warm-up forward. */
export function poolBlocks(ctx: EngineContext, setup: StoreSetup, opts: PagedOptions): { numBlocks: number; basis: string } {
  const perBlock = KVPool.bytesPerToken({ numLayers: ctx.cfg.numLayers, kvHeads: ctx.cfg.numKvHeads, headDim: ctx.cfg.headDim, dtype: ctx.dtype }) * opts.blockSize;
  let bytes: number, basis: string;
  const fixed = fixedPoolBytes(ctx.device, opts.cpuPoolBytes);
  if (fixed) ({ bytes, basis } = fixed);
  else {
    setup.warmUp(opts.warmupTokens);
    const { free, total } = native.memGetInfo(deviceIndex(ctx.device));
    // What is still free once the weights and the warm-up's activations (kept by our caching allocator) are
    // taken, minus the share of the card we leave alone.
    bytes = free - (1 - opts.gpuMemoryUtilization) * total;
    const inUse = allocatorStats(ctx.device).bytesReserved;
    basis = `${(free / 2 ** 30).toFixed(1)} GiB free after weights and a ${opts.warmupTokens}-token warm-up (engine holds ${(inUse / 2 ** 30).toFixed(2)} GiB), minus ${(100 * (1 - opts.gpuMemoryUtilization)).toFixed(0)}% of ${(total / 2 ** 30).toFixed(1)} GiB`;
  }
  const numBlocks = Math.floor(bytes / perBlock);
  if (numBlocks < 1) throw new Error(`paged KV cache: no memory left for even one block (${basis}: ${bytes} bytes, ${perBlock} per block)`);
  return { numBlocks, basis };
}

export function pagedRecipe(opts: PagedOptions = DEFAULT_PAGED): Recipe {
  return withKVStore('paged-kv-cache', 6, 'one paged KV pool sized from free memory; block tables', (ctx, setup) => {
    const { numBlocks, basis } = poolBlocks(ctx, setup, opts);
    const store = new PagedKVStore({
      numLayers: ctx.cfg.numLayers,
      kvHeads: ctx.cfg.numKvHeads,
      headDim: ctx.cfg.headDim,
      numBlocks,
      blockSize: opts.blockSize,
      dtype: ctx.dtype,
      device: ctx.device,
      basis,
    });
    return store;
  }, (store) => (store instanceof PagedKVStore ? [poolLine(store)] : []));
}

/** "KV pool: N blocks of 16 tokens = X GiB (basis)". */
export function poolLine(store: PagedKVStore): string {
  return `KV pool: ${store.blocks.numBlocks} blocks of ${store.opts.blockSize} tokens = ${(store.poolBytes / 2 ** 30).toFixed(2)} GiB (${store.opts.basis ?? 'size given'})`;
}

export const recipe: Recipe = pagedRecipe();
