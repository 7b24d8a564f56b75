// The step input's seqOrder section (what lesson 09's decode kernel reads to start the longest
// contexts first): longest context first, ties by index, in both layouts.
import { describe, expect, it } from 'vitest';

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
