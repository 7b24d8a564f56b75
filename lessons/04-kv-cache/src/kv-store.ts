// Where a sequence's keys and values live between steps. Lessons 04, 05 and 06
// differ only in this: concatenated tensors, preallocated buffers, or pages of
// a shared pool. The attention backend and the runner are the same for all three.
import { type Tensor, ops } from '@aios/engine-core';
import type { KVCacheStats } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { AttentionBackend, ForwardContext } from '@aios/engine-core/model/qwen3.ts';

/** The keys and values attention should read, and how to let go of them afterwards. */
export interface KVView {
  k: Tensor;
  v: Tensor;
  /** When k and v are a shared pool: the row of each of the sequence's keys (i32 [length]). */
  slots?: Tensor;
  /** Frees temporaries made to build the view (a no-op when k and v are views of the cache). */
  done(): void;
}

export interface KVStore {
  readonly name: string;
  /** Stores this forward's new k/v [T, Hkv, D] for `layer` at positions start..start+T-1, returns all K/V so far. */
  append(seq: Sequence, layer: number, k: Tensor, v: Tensor, start: number): KVView;
  /** Frees everything held for a sequence. */
  release(seq: Sequence): void;
  stats(): KVCacheStats;
  dispose(): void;
}

/** The forward context of a runner with a cache: which sequence, and how many tokens it already has cached. */
export interface CacheContext extends ForwardContext {
  seq: Sequence;
  start: number;
}

/**
 * Attention over the cached keys and values plus this forward's own. The store
 * is set after the model is loaded (a pool is sized from the memory the weights
 * leave); until then a forward is an error.
 */
export class CachedAttention implements AttentionBackend<CacheContext> {
  private current: KVStore | undefined;

  get name(): string {
    return `cached(${this.current?.name ?? 'no store yet'})`;
  }

  get store(): KVStore {
    if (!this.current) throw new Error('CachedAttention: no KV store set yet');
    return this.current;
  }

  /** Where K/V live from now on. */
  use(store: KVStore): void {
    this.current = store;
  }

  attend(layer: number, q: Tensor, k: Tensor, v: Tensor, ctx: CacheContext): Tensor {
    const kv = this.store.append(ctx.seq, layer, k, v, ctx.start);
    try {
      // q holds the new tokens, the last T of kvLen positions: the causal mask lines up.
      return ops.attention(q, kv.k, kv.v, undefined, kv.slots ? { kvSlots: kv.slots } : {});
    } finally {
      kv.done();
    }
  }
}
