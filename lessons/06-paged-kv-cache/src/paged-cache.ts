// Lesson 06's store: one pool for every sequence, [layers, 2, slots, kvHeads,
// headDim], allocated once and sized from the memory left after the weights
// and a warm-up forward. New K/V rows are scattered to their slots; attention
// reads a sequence's rows in place, through the slot table its block table
// gives (ops.attention's kvSlots): no copy of the cache, however scattered its
// blocks are.
import { Tensor, ops } from '@aios/engine-core';
import type { KVCacheStats } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { KVStore, KVView } from '@aios/lesson-04-kv-cache';

import { BlockManager } from './block-manager.ts';
import { KVPool } from './kv-pool.ts';

export interface PagedStoreOptions {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  numBlocks: number;
  blockSize: number;
  dtype: Tensor['dtype'];
  device: Tensor['device'];
  /** How the pool's size was chosen, for the demo's line (poolLine). */
  basis?: string;
}

export class PagedKVStore implements KVStore {
  readonly name = 'paged';
  readonly blocks: BlockManager;
  readonly pool: KVPool;
  readonly bytesPerToken: number;
  /** The slot indices of the forward in flight, built on layer 0 and reused by the others. */
  private current: { seqId: number; start: number; newSlots: Tensor; allSlots: Tensor } | undefined;

  constructor(readonly opts: PagedStoreOptions) {
    this.blocks = new BlockManager(opts.numBlocks, opts.blockSize);
    this.pool = new KVPool(opts, opts.numBlocks, opts.blockSize, opts.device);
    this.bytesPerToken = KVPool.bytesPerToken(opts);
  }

  append(seq: Sequence, layer: number, k: Tensor, v: Tensor, start: number): KVView {
    const T = k.shape[0]!;
    if (layer === 0) this.beginForward(seq, start, T);
    const cur = this.current!;
    if (cur.seqId !== seq.id || cur.start !== start) throw new Error(`paged cache: layer ${layer} of sequence ${seq.id} at ${start} outside its forward`);
    const kPool = this.pool.k(layer), vPool = this.pool.v(layer);
    ops.scatterRows(k, cur.newSlots, kPool);
    ops.scatterRows(v, cur.newSlots, vPool);
    return { k: kPool, v: vPool, slots: cur.allSlots, done: () => {} };
  }

  private beginForward(seq: Sequence, start: number, tokens: number): void {
    this.endForward();
    if (this.blocks.length(seq.id) !== start)
      throw new Error(`paged cache: sequence ${seq.id} has ${this.blocks.length(seq.id)} tokens cached, the forward starts at ${start}`);
    this.blocks.append(seq.id, tokens); // throws OutOfBlocksError, changing nothing, when full
    // One upload: the new tokens' slots are the last `tokens` of the sequence's slot table.
    const allSlots = Tensor.fromArray(Int32Array.from(this.blocks.slots(seq.id)), [start + tokens], { dtype: 'i32', device: this.opts.device });
    this.current = { seqId: seq.id, start, newSlots: allSlots.narrow(0, start, tokens), allSlots };
  }

  private endForward(): void {
    if (!this.current) return;
    this.current.allSlots.dispose(); // newSlots is a view of it
    this.current = undefined;
  }

  release(seq: Sequence): void {
    if (this.current?.seqId === seq.id) this.endForward();
    this.blocks.free(seq.id);
  }

  /** Reserved: the blocks sequences hold; used: the tokens in them. The pool's size is `poolBytes`. */
  stats(): KVCacheStats {
    return { reservedBytes: this.blocks.usedBlocks * this.opts.blockSize * this.bytesPerToken, usedBytes: this.blocks.usedTokens * this.bytesPerToken };
  }

  get poolBytes(): number {
    return this.pool.bytes;
  }

  dispose(): void {
    this.endForward();
    this.pool.dispose();
  }
}
