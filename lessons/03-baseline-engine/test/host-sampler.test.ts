import { describe, expect, it } from 'vitest';

import { sampleRow } from '../src/host-sampler.ts';

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 4294967296);
}

describe('sampleRow', () => {
  const logits = Float32Array.from([2, 1, 0, -1, 3]);
  const probs = (t: number) => {
    const e = Array.from(logits, (v) => Math.exp(v / t));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  };

  it('draws tokens with softmax(logits / temperature) frequencies', () => {
    for (const t of [0.6, 1.5]) {
      const rand = seeded(42);
      const counts = new Array<number>(5).fill(0);
      const n = 40000;
      for (let i = 0; i < n; i++) counts[sampleRow(logits, t, 0, 1, rand)]!++;
      probs(t).forEach((p, i) => expect(Math.abs(counts[i]! / n - p), `token ${i} at t=${t}`).toBeLessThan(0.01));
    }
  });

  it('keeps only the top k, and the top-p nucleus', () => {
    const rand = seeded(7);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(sampleRow(logits, 1, 2, 1, rand));
    expect([...seen].sort()).toEqual([0, 4]);
    // p(4) = 0.64 at t = 1: a nucleus of 0.5 is token 4 alone; 0.8 adds token 0.
    seen.clear();
    for (let i = 0; i < 2000; i++) seen.add(sampleRow(logits, 1, 0, 0.5, rand));
    expect([...seen]).toEqual([4]);
    seen.clear();
    for (let i = 0; i < 2000; i++) seen.add(sampleRow(logits, 1, 0, 0.8, rand));
    expect([...seen].sort()).toEqual([0, 4]);
  });

  it('is reproducible for a seed', () => {
    const draw = (seed: number) => {
      const r = seeded(seed);
      return Array.from({ length: 50 }, () => sampleRow(logits, 0.8, 0, 1, r));
    };
    expect(draw(3)).toEqual(draw(3));
    expect(draw(3)).not.toEqual(draw(4));
  });
});
