// The KV pool: physical memory for every sequence's keys and values, one
// tensor [layers, 2, slots, kvHeads, headDim] cut into blocks of blockSize
// slots. The model runner owns it (as an operating system's kernel owns the
// physical pages); which blocks belong to whom is the scheduler's business
// (its block manager), and reaches the runner as block tables in each step plan.
import os from 'node:os';

import { type Device, type DType, Tensor, allocatorStats, deviceIndex, dtypeSize, emptyCache, native, resetPeakStats } from '@aios/engine-core';
import type { EngineContext } from '@aios/engine-core/engine/types.ts';

export class KVPool {
  readonly tensor: Tensor;
  private readonly keys: Tensor[] = [];
  private readonly values: Tensor[] = [];

  constructor(
    readonly numLayers: number,
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly kvHeads: number,
    readonly headDim: number,
    dtype: DType,
    device: Device,
  ) {
    this.tensor = Tensor.empty([numLayers, 2, numBlocks * blockSize, kvHeads, headDim], { dtype, device });
    for (let l = 0; l < numLayers; l++) {
      const layer = this.tensor.select(0, l);
      this.keys.push(layer.select(0, 0));
      this.values.push(layer.select(0, 1));
    }
  }

  static forModel(ctx: EngineContext, numBlocks: number): KVPool {
    return new KVPool(ctx.cfg.numLayers, numBlocks, ctx.options.blockSize, ctx.cfg.numKvHeads, ctx.cfg.headDim, ctx.dtype, ctx.device);
  }

  /** K and V of one token in every layer. */
  static bytesPerToken(ctx: EngineContext): number {
    return 2 * ctx.cfg.numLayers * ctx.cfg.numKvHeads * ctx.cfg.headDim * dtypeSize(ctx.dtype);
  }

  /** Layer l's keys: [slots, kvHeads, headDim]. */
  k(layer: number): Tensor {
    return this.keys[layer]!;
  }

  v(layer: number): Tensor {
    return this.values[layer]!;
  }

  get bytes(): number {
    return this.tensor.numel * this.tensor.itemSize;
  }

  dispose(): void {
    this.tensor.dispose();
  }
}

export interface PoolSize {
  numBlocks: number;
  /** One line: where the number comes from. */
  basis: string;
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
  const perBlock = KVPool.bytesPerToken(ctx) * ctx.options.blockSize;
  let bytes: number, basis: string;
  const env = process.env.AIOS_KV_CACHE_BYTES;
  if (env) {
    bytes = Number(env);
    if (!(bytes > 0)) throw new Error(`AIOS_KV_CACHE_BYTES must be a positive number of bytes, got ${env}`);
    basis = 'AIOS_KV_CACHE_BYTES';
  } else if (ctx.options.kvCacheBytes !== undefined) {
    bytes = ctx.options.kvCacheBytes;
    basis = 'the kvCacheBytes engine option';
  } else if (ctx.device === 'cpu') {
    const cpuDefault = 256 * 2 ** 20;
    bytes = Math.min(cpuDefault, os.freemem() / 4);
    basis = 'CPU default of 256 MiB';
  } else {
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
  const numBlocks = Math.floor(bytes / perBlock);
  if (numBlocks < 1) throw new Error(`KV pool: no memory left for even one block (${basis}: ${Math.floor(bytes)} bytes, ${perBlock} per block)`);
  return { numBlocks, basis };
}
