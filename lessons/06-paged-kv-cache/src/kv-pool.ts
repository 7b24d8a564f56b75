// The KV pool: physical memory for every sequence's keys and values, one
// tensor [layers, 2, slots, kvHeads, headDim] cut into blocks of blockSize
// slots, allocated once. Lesson 06's paged store holds one; from lesson 07 the
// model runner owns it (as an operating system's kernel owns the physical
// pages), and which blocks belong to whom is the scheduler's business.
import os from 'node:os';

import { type Device, type DType, Tensor, dtypeSize } from '@aios/engine-core';
import type { EngineContext } from '@aios/engine-core/engine/types.ts';

export interface PoolShape {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
}

export class KVPool {
  readonly tensor: Tensor;
  private readonly keys: Tensor[] = [];
  private readonly values: Tensor[] = [];

  constructor(
    readonly shape: PoolShape,
    readonly numBlocks: number,
    readonly blockSize: number,
    device: Device,
  ) {
    this.tensor = Tensor.empty([shape.numLayers, 2, numBlocks * blockSize, shape.kvHeads, shape.headDim], { dtype: shape.dtype, device });
    for (let l = 0; l < shape.numLayers; l++) {
      const layer = this.tensor.select(0, l);
      this.keys.push(layer.select(0, 0));
      this.values.push(layer.select(0, 1));
    }
  }

  /** K and V of one token in every layer. */
  static bytesPerToken(s: PoolShape): number {
    return 2 * s.numLayers * s.kvHeads * s.headDim * dtypeSize(s.dtype);
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

/** The pool shape of a model and dtype. */
export function poolShape(ctx: Pick<EngineContext, 'cfg' | 'dtype'>): PoolShape {
  return { numLayers: ctx.cfg.numLayers, kvHeads: ctx.cfg.numKvHeads, headDim: ctx.cfg.headDim, dtype: ctx.dtype };
}

export interface PoolSize {
  numBlocks: number;
  /** One line: where the number comes from. */
  basis: string;
}

/** Whole blocks of `blockSize` tokens in `bytes`; an error naming the basis when not one fits. */
export function blocksIn(bytes: number, basis: string, shape: PoolShape, blockSize: number): PoolSize {
  const perBlock = KVPool.bytesPerToken(shape) * blockSize;
  const numBlocks = Math.floor(bytes / perBlock);
  if (numBlocks < 1) throw new Error(`KV pool: no memory left for even one block (${basis}: ${Math.floor(bytes)} bytes, ${perBlock} per block)`);
  return { numBlocks, basis };
}

/** "KV pool: N blocks of 16 tokens = X GiB (basis)": the line the demos print. */
export function poolLine(pool: KVPool, basis: string): string {
  return `KV pool: ${pool.numBlocks} blocks of ${pool.blockSize} tokens = ${(pool.bytes / 2 ** 30).toFixed(2)} GiB (${basis})`;
}

/**
 * A pool size that is given rather than measured: AIOS_KV_CACHE_BYTES, else `configured`
 * (an engine option), else on the CPU backend (no free-memory query there) `cpuDefault`
 * bytes or a quarter of the free host memory. Undefined on a GPU with nothing configured:
 * the caller measures.
 */
export function fixedPoolBytes(device: Device, cpuDefault: number, configured?: number): { bytes: number; basis: string } | undefined {
  const env = process.env.AIOS_KV_CACHE_BYTES;
  if (env) {
    const bytes = Number(env);
    if (!(bytes > 0)) throw new Error(`AIOS_KV_CACHE_BYTES must be a positive number of bytes, got ${env}`);
    return { bytes, basis: 'AIOS_KV_CACHE_BYTES' };
  }
  if (configured !== undefined) return { bytes: configured, basis: 'the kvCacheBytes engine option' };
  if (device === 'cpu') return { bytes: Math.min(cpuDefault, os.freemem() / 4), basis: `CPU default of ${(cpuDefault / 2 ** 20).toFixed(0)} MiB` };
  return undefined;
}
