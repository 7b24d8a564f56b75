// The step input's seqOrder section (what lesson 09's decode kernel reads to start the longest
// contexts first): longest context first, ties by index, in both layouts.
import { describe, expect, it } from 'vitest';

import { Tensor, ops } from '@aios/engine-core';

import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { StepPlan } from '@aios/engine-core/engine/types.ts';

import { StepInputBuffer } from '../src/step-input.ts';

function decodeStep(contexts: number[]): StepPlan {
  const sequences = contexts.map((n, i) => {
    const s = new Sequence(Array.from({ length: n }, (_, t) => (t * 7 + i) % 100), new SamplingParams());
    s.cachedTokens = n - 1;
    return s;
  });
  return { sequences, newTokens: sequences.map(() => 1), phase: 'decode', blockTables: sequences.map((s, i) => Array.from({ length: Math.ceil(s.length / 16) }, (_, b) => i * 8 + b)) };
}

describe('StepInputBuffer: seqOrder', () => {
  it('lists the sequences longest context first, ties by index (packed step and fixed layout, padding last)', () => {
    const buf = new StepInputBuffer({ maxTokens: 64, maxSeqs: 8, maxBlocksPerSeq: 8 }, 16, 'cpu');
    try {
      const plan = decodeStep([5, 40, 17, 40, 1]);
      const packed = buf.build(plan);
      expect(packed.meta.contextLens.toNumbers()).toEqual([5, 40, 17, 40, 1]);
      expect(packed.meta.seqOrder!.toNumbers()).toEqual([1, 3, 2, 0, 4]);
      const fixed = buf.buildFixed(plan, { seqs: 8, width: 4, maxContextLen: 64 });
      expect(fixed.meta.seqOrder!.toNumbers()).toEqual([1, 3, 2, 0, 4, 5, 6, 7]); // padding rows hold one key
      // A random batch: a permutation, contexts never increasing along it.
      const contexts = Array.from({ length: 8 }, (_, i) => 1 + ((i * 37 + 11) % 60));
      const order = buf.build(decodeStep(contexts)).meta.seqOrder!.toNumbers();
      expect([...order].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      for (let i = 1; i < order.length; i++) expect(contexts[order[i - 1]!]!).toBeGreaterThanOrEqual(contexts[order[i]!]!);
    } finally {
      buf.dispose();
    }
  });
});

describe('StepInputBuffer: block tables', () => {
  // A row's entries past the sequence's blocks keep what an earlier step wrote there (writeTable
  // does not clear them): attention must read only the blocks the context covers. The earlier
  // step here leaves block ids far outside the pool in row 0, and the attention of the later step
  // must equal the same step built in a fresh buffer, on lesson 07's kernel and lesson 09's decode.
  it('a row holding an earlier, longer table gives the same attention as a fresh buffer', () => {
    const blockSize = 16, numBlocks = 8, Hq = 4, Hkv = 2, D = 64;
    const cap = { maxTokens: 64, maxSeqs: 4, maxBlocksPerSeq: 8 };
    const stale = new StepInputBuffer(cap, blockSize, 'cpu');
    const fresh = new StepInputBuffer(cap, blockSize, 'cpu');
    const longer = decodeStep([100]);
    longer.blockTables = [[900, 901, 902, 903, 904, 905, 906]]; // never valid in an 8-block pool
    const later = decodeStep([20, 35]);
    later.blockTables = [[3, 5], [0, 1, 2]];
    const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
    const k = Tensor.fromArray(rand(numBlocks * blockSize * Hkv * D, 1), [numBlocks * blockSize, Hkv, D]);
    const v = Tensor.fromArray(rand(numBlocks * blockSize * Hkv * D, 2), [numBlocks * blockSize, Hkv, D]);
    const q = Tensor.fromArray(rand(2 * Hq * D, 3), [2, Hq, D]);
    try {
      stale.build(longer);
      stale.buildFixed(longer, { seqs: 4, width: 8, maxContextLen: 128 });
      for (const fixed of [false, true]) {
        const layout = { seqs: 4, width: 8, maxContextLen: 128 };
        const a = fixed ? stale.buildFixed(later, layout) : stale.build(later);
        const b = fixed ? fresh.buildFixed(later, layout) : fresh.build(later);
        // Row 0: the later sequence's two blocks, then (in the fixed layout, whose sections do not
        // move between steps) the earlier step's ids, left in place.
        const table0 = a.meta.blockTables.toNumbers().slice(0, fixed ? 7 : 2);
        expect(table0).toEqual(fixed ? [3, 5, 902, 903, 904, 905, 906] : [3, 5]);
        const rows = (t: Tensor) => Array.from(t.narrow(0, 0, 2).toArray() as Float32Array);
        for (const attend of [
          (m: typeof a.meta) => ops.pagedAttention(fixed ? padRows(q, 4) : q, k, v, m),
          (m: typeof a.meta) => ops.flashDecode(fixed ? padRows(q, 4) : q, k, v, m, undefined, { version: 2, splits: 2 }),
        ]) {
          const got = attend(a.meta), want = attend(b.meta);
          expect(rows(got)).toEqual(rows(want));
          got.dispose();
          want.dispose();
        }
      }
    } finally {
      for (const t of [k, v, q]) t.dispose();
      stale.dispose();
      fresh.dispose();
    }
  });
});

/** q's rows, then zero rows up to `n` (a fixed layout's padding rows). */
function padRows(q: Tensor, n: number): Tensor {
  const [t, h, d] = q.shape as [number, number, number];
  const host = new Float32Array(n * h * d);
  host.set(q.toArray() as Float32Array);
  return Tensor.fromArray(host, [n, h, d]);
}
