// Lesson 04's store: per sequence and layer, K and V tensors that grow by
// concatenation. Each step copies the whole cache into a new tensor one row
// longer: generating n tokens copies O(n^2) bytes. It is still far less work
// than lesson 03's recompute (O(n^2) FLOPs through every weight), and lesson 05
// removes the copies.
import { type Tensor, ops } from '@aios/engine-core';
import type { KVCacheStats } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';

import type { KVStore, KVView } from './kv-store.ts';

export class ConcatKVStore implements KVStore {
  readonly name = 'concat';
  private readonly caches = new Map<number, { k: Tensor; v: Tensor }[]>();
  /** Bytes copied by concatenation so far: the cost this lesson shows. */
  copiedBytes = 0;

  append(seq: Sequence, layer: number, k: Tensor, v: Tensor, start: number): KVView {
    let layers = this.caches.get(seq.id);
    if (!layers) this.caches.set(seq.id, (layers = []));
    const old = layers[layer];
    if (start === 0 || !old) {
      if (old) throw new Error(`concat cache: sequence ${seq.id} layer ${layer} restarted at position 0 with a cache present`);
      layers[layer] = { k: k.clone(), v: v.clone() };
    } else {
      if (old.k.shape[0] !== start) throw new Error(`concat cache: sequence ${seq.id} layer ${layer} holds ${old.k.shape[0]} tokens, the forward starts at ${start}`);
      layers[layer] = { k: ops.concat([old.k, k], 0), v: ops.concat([old.v, v], 0) };
      this.copiedBytes += 2 * (old.k.numel + k.numel) * k.itemSize;
      old.k.dispose();
      old.v.dispose();
    }
    const cur = layers[layer]!;
    return { k: cur.k, v: cur.v, done: () => {} };
  }

  release(seq: Sequence): void {
    for (const l of this.caches.get(seq.id) ?? []) {
      l.k.dispose();
      l.v.dispose();
    }
    this.caches.delete(seq.id);
  }

  stats(): KVCacheStats {
    let bytes = 0;
    for (const layers of this.caches.values()) for (const l of layers) bytes += (l.k.numel + l.v.numel) * l.k.itemSize;
    return { reservedBytes: bytes, usedBytes: bytes };
  }

  dispose(): void {
    for (const id of [...this.caches.keys()]) this.release({ id } as Sequence);
  }
}
