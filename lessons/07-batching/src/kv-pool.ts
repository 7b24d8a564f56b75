// Sizing the KV pool of the batched runtime. The pool (lesson 06's KVPool) is
// owned by the model runner, as an operating system's kernel owns the physical
// pages; which blocks belong to whom is the scheduler's business (its block
// manager), and reaches the runner as block tables in each step plan.
import { allocatorStats, deviceIndex, emptyCache, native, resetPeakStats } from '@aios/engine-core';
import type { EngineContext } from '@aios/engine-core/engine/types.ts';
import { DEFAULT_PAGED, KVPool, type PoolSize, blocksIn, fixedPoolBytes, poolShape } from '@aios/lesson-06-paged-kv-cache';

export { KVPool };

/** The pool of a model's shape and the engine's block size (the class is lesson 06's). */
export function poolFor(ctx: EngineContext, numBlocks: number): KVPool {
  return new KVPool(poolShape(ctx), numBlocks, ctx.options.blockSize, ctx.device);
}

/**
 * How many blocks the pool gets. On a GPU, as vLLM does: run a warm-up forward
 * of a full step (maxNumBatchedTokens tokens), take the activation memory it
 * peaked at, hand every cached block back to the driver, and give the pool
 * what is free minus the share of the card left alone and minus those
 * activations. `warmUp` runs the forward and returns the bytes of the scratch
 * pool it allocated for it (not activations). Elsewhere: a fixed size.
 */
export function sizePool(ctx: EngineContext, warmUp: (tokens: number) => number): PoolSize {
  let bytes: number, basis: string;
  const fixed = fixedPoolBytes(ctx.device, DEFAULT_PAGED.cpuPoolBytes, ctx.options.kvCacheBytes);
  if (fixed) ({ bytes, basis } = fixed);
  else {
    const dev = deviceIndex(ctx.device);
    const weights = allocatorStats(ctx.device).bytesInUse;
    resetPeakStats(ctx.device);
    const tokens = ctx.options.maxNumBatchedTokens;
    const scratch = warmUp(tokens);
    const activations = Math.max(0, allocatorStats(ctx.device).peakBytesInUse - weights - scratch);
    emptyCache(ctx.device);
    const { free, total } = native.memGetInfo(dev);
    const util = ctx.options.gpuMemoryUtilization;
    bytes = free - (1 - util) * total - activations;
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
    basis =
      `${gib(free)} free with ${gib(weights)} of weights loaded, minus ${(100 * (1 - util)).toFixed(0)}% of ${gib(total)} left alone, ` +
      `minus ${gib(activations)} of activations measured in a ${tokens}-token warm-up step`;
  }
  return blocksIn(bytes, basis, poolShape(ctx), ctx.options.blockSize);
}
