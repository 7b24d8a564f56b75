import { describe, expect, it } from 'vitest';

import { BlockManager, OutOfBlocksError } from '../src/block-manager.ts';

describe('BlockManager', () => {
  it('maps positions to slots through the block table', () => {
    const bm = new BlockManager(8, 4);
    expect(bm.append(1, 6)).toEqual([0, 1, 2, 3, 4, 5]); // blocks 0 and 1
    expect(bm.append(2, 3)).toEqual([8, 9, 10]); // block 2
    expect(bm.append(1, 3)).toEqual([6, 7, 12]); // fills block 1, then takes block 3
    expect(bm.blockTable(1)).toEqual([0, 1, 3]);
    expect(bm.slots(1)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 12]);
    expect(bm.length(1)).toBe(9);
    expect(bm.usedBlocks).toBe(4);
    expect(bm.usedTokens).toBe(12);
  });

  it('keeps at most one partly filled block per sequence', () => {
    const bm = new BlockManager(100, 16);
    for (let len = 1; len <= 200; len++) {
      bm.append(7, 1);
      const reservedSlots = bm.blockTable(7).length * 16;
      expect(reservedSlots - bm.length(7)).toBeLessThan(16);
      expect(reservedSlots).toBeGreaterThanOrEqual(len);
    }
  });

  it('reports exhaustion without changing anything', () => {
    const bm = new BlockManager(3, 4);
    bm.append(1, 8);
    expect(bm.canAppend(2, 5)).toBe(false);
    expect(() => bm.append(2, 5)).toThrow(OutOfBlocksError);
    expect(() => bm.append(2, 5)).toThrow('KV cache out of blocks: 2 more needed, 1 free of 3');
    expect(bm.has(2)).toBe(false);
    expect(bm.freeBlocks).toBe(1);
    expect(bm.canAppend(1, 4)).toBe(true);
    expect(bm.append(1, 4)).toEqual([8, 9, 10, 11]);
    expect(() => bm.append(1, 1)).toThrow(OutOfBlocksError);
    expect(bm.length(1)).toBe(12);
  });

  it('frees everything: no leak after many sequences come and go', () => {
    const bm = new BlockManager(64, 16);
    let seed = 12345;
    const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    const live = new Set<number>();
    for (let step = 0; step < 5000; step++) {
      const id = rand(20);
      if (live.has(id) && rand(3) === 0) {
        bm.free(id);
        live.delete(id);
      } else {
        const n = 1 + rand(40);
        if (bm.canAppend(id, n)) {
          bm.append(id, n);
          live.add(id);
        } else expect(() => bm.append(id, n)).toThrow(OutOfBlocksError);
      }
      // Every block is either free or in exactly one table.
      const owned = [...live].flatMap((s) => bm.blockTable(s));
      expect(new Set(owned).size).toBe(owned.length);
      expect(owned.length + bm.freeBlocks).toBe(64);
    }
    for (const id of live) bm.free(id);
    expect(bm.freeBlocks).toBe(64);
    expect(bm.usedTokens).toBe(0);
    bm.free(999); // unknown ids are ignored
    expect(bm.freeBlocks).toBe(64);
  });

  it('rejects nonsense sizes', () => {
    expect(() => new BlockManager(0, 16)).toThrow(/numBlocks/);
    expect(() => new BlockManager(4, 1.5)).toThrow(/blockSize/);
    expect(() => new BlockManager(4, 4).append(1, -1)).toThrow(/non-negative/);
  });
});
