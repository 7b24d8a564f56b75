// Lesson 06: lesson 05's engine with per-sequence buffers replaced by one
// paged pool, sized from the memory the weights and a warm-up forward leave.
import os from 'node:os';

import { allocatorStats, native, deviceIndex } from '@aios/engine-core';
import type { EngineContext, Recipe } from '@aios/engine-core/engine/types.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';
import { type CacheContext, withKVStore } from '@aios/lesson-04-kv-cache';
import { PreallocatedKVStore } from '@aios/lesson-05-preallocated-cache';

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

/** A forward of `tokens` tokens (through a throwaway preallocated cache), so the allocator has seen a long prefill's activations. */
function warmUp(ctx: EngineContext, model: Qwen3Model<CacheContext>, tokens: number): void {
  const store = new PreallocatedKVStore(ctx.cfg.numLayers);
  const attention = model.layers[0]!.attention as unknown as { store: unknown };
  const saved = attention.store;
  attention.store = store;
  const seq = new Sequence(Array.from({ length: tokens }, (_, i) => (i * 7919) % ctx.cfg.vocabSize), new SamplingParams({ maxTokens: 1 }));
  try {
    model.forwardAt(seq.promptIds, 0, { seq, start: 0 }).dispose();
  } finally {
    store.release(seq);
    attention.store = saved;
  }
}

export function poolBlocks(ctx: EngineContext, model: Qwen3Model<CacheContext>, opts: PagedOptions): { numBlocks: number; basis: string } {
  const bytesPerToken = PagedKVStore.bytesPerToken({ numLayers: ctx.cfg.numLayers, kvHeads: ctx.cfg.numKvHeads, headDim: ctx.cfg.headDim, dtype: ctx.dtype });
  const perBlock = bytesPerToken * opts.blockSize;
  let bytes: number, basis: string;
  const env = process.env.AIOS_KV_CACHE_BYTES;
  if (env) {
    bytes = Number(env);
    if (!(bytes > 0)) throw new Error(`AIOS_KV_CACHE_BYTES must be a positive number of bytes, got ${env}`);
    basis = 'AIOS_KV_CACHE_BYTES';
  } else if (ctx.device === 'cpu') {
    bytes = Math.min(opts.cpuPoolBytes, os.freemem() / 4);
    basis = `CPU default of ${(opts.cpuPoolBytes / 2 ** 20).toFixed(0)} MiB`;
  } else {
    warmUp(ctx, model, opts.warmupTokens);
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
  return withKVStore('paged-kv-cache', 6, 'one paged KV pool sized from free memory; block tables', (ctx, model) => {
    const { numBlocks, basis } = poolBlocks(ctx, model, opts);
    const store = new PagedKVStore({
      numLayers: ctx.cfg.numLayers,
      kvHeads: ctx.cfg.numKvHeads,
      headDim: ctx.cfg.headDim,
      numBlocks,
      blockSize: opts.blockSize,
      dtype: ctx.dtype,
      device: ctx.device,
    });
    lastPoolInfo = { numBlocks, blockSize: opts.blockSize, poolBytes: store.poolBytes, basis };
    return store;
  });
}

/** How the last pool was sized (the demo prints it). */
export let lastPoolInfo: { numBlocks: number; blockSize: number; poolBytes: number; basis: string } | undefined;

export const recipe: Recipe = pagedRecipe();
