// Lesson 05's store: when a sequence arrives, each layer gets K and V buffers
// for its longest possible length (prompt + maxTokens), and every step writes
// its new rows in place. No copies of old rows, ever; attention reads a view
// of the first `length` rows. The price: memory reserved for tokens that may
// never be generated (a request that stops early wastes the rest).
import { Tensor, ops } from '@aios/engine-core';
import type { KVCacheStats } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { KVStore, KVView } from '@aios/lesson-04-kv-cache';

interface SequenceBuffers {
  k: Tensor[];
  v: Tensor[];
  capacity: number;
  /** Tokens written so far (counted on the last layer, so a forward counts once). */
  length: number;
}

export class PreallocatedKVStore implements KVStore {
  readonly name = 'preallocated';
  private readonly buffers = new Map<number, SequenceBuffers>();

  constructor(readonly numLayers: number) {}

  append(seq: Sequence, layer: number, k: Tensor, v: Tensor, start: number): KVView {
    let b = this.buffers.get(seq.id);
    if (!b) {
      const capacity = seq.promptIds.length + seq.params.maxTokens;
      const shape = [capacity, k.shape[1]!, k.shape[2]!];
      b = { k: [], v: [], capacity, length: 0 };
      for (let l = 0; l < this.numLayers; l++) {
        b.k.push(Tensor.empty(shape, { dtype: k.dtype, device: k.device }));
        b.v.push(Tensor.empty(shape, { dtype: v.dtype, device: v.device }));
      }
      this.buffers.set(seq.id, b);
    }
    const T = k.shape[0]!;
    if (start + T > b.capacity) throw new Error(`preallocated cache: sequence ${seq.id} needs ${start + T} positions, its buffers hold ${b.capacity}`);
    // Write the new rows in place: a view of rows [start, start + T) is the destination.
    ops.copy(k, b.k[layer]!.narrow(0, start, T));
    ops.copy(v, b.v[layer]!.narrow(0, start, T));
    if (layer === this.numLayers - 1) b.length = start + T;
    return { k: b.k[layer]!.narrow(0, 0, start + T), v: b.v[layer]!.narrow(0, 0, start + T), done: () => {} };
  }

  release(seq: Sequence): void {
    const b = this.buffers.get(seq.id);
    if (!b) return;
    for (const t of [...b.k, ...b.v]) t.dispose();
    this.buffers.delete(seq.id);
  }

  stats(): KVCacheStats {
    let reserved = 0, used = 0;
    for (const b of this.buffers.values()) {
      const perToken = 2 * this.numLayers * (b.k[0]!.numel / b.capacity) * b.k[0]!.itemSize;
      reserved += b.capacity * perToken;
      used += b.length * perToken;
    }
    return { reservedBytes: reserved, usedBytes: used };
  }

  dispose(): void {
    for (const id of [...this.buffers.keys()]) this.release({ id } as Sequence);
  }
}
