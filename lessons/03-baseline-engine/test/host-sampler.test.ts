import { describe, expect, it } from 'vitest';

import { Tensor } from '@aios/engine-core';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { mulberry32 as seeded } from '@aios/engine-core/random.ts';

import { HostSampler, sampleRow } from '../src/host-sampler.ts';

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

describe('HostSampler', () => {
  it('keeps one seeded stream per sequence until the engine releases it', () => {
    const logits = Tensor.fromArray(Float32Array.from([0.5, 0.4, 0.3, 0.2, 0.1, 0, 0, 0]), [1, 8], { device: 'cpu' });
    const seq = new Sequence([1, 2, 3], new SamplingParams({ temperature: 1, seed: 11, maxTokens: 100 }));
    const sampler = new HostSampler();
    const draw = (): number[] => Array.from({ length: 40 }, () => sampler.sample(logits, [seq]).tokens[0]!);
    const first = draw();
    const more = draw(); // the same stream, further on
    sampler.release(seq);
    const again = draw(); // a fresh stream from the seed
    expect(new Set(first).size).toBeGreaterThan(2);
    expect(more).not.toEqual(first);
    expect(again).toEqual(first);
    logits.dispose();
  });

  it('resolves greedy, plain-temperature and top-k/top-p rows of one step, each by its own rule', () => {
    // Row r's largest logit is at index r (and the runner-up at r + 1): a row read from the wrong place shows.
    const V = 8, rows = 4;
    const values = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) {
      values[r * V + r] = 5;
      values[r * V + r + 1] = 4.9;
    }
    const logits = Tensor.fromArray(values, [rows, V], { device: 'cpu' });
    const seqs = [
      new Sequence([1], new SamplingParams({ temperature: 0, maxTokens: 50 })),
      new Sequence([1], new SamplingParams({ temperature: 1, topK: 1, seed: 3, maxTokens: 50 })),
      new Sequence([1], new SamplingParams({ temperature: 1, topK: 2, seed: 4, maxTokens: 50 })),
      new Sequence([1], new SamplingParams({ temperature: 1, topP: 0.3, seed: 5, maxTokens: 50 })),
    ];
    const sampler = new HostSampler();
    const draws = Array.from({ length: 30 }, () => sampler.sample(logits, seqs).tokens);
    expect(new Set(draws.map((d) => d[0]))).toEqual(new Set([0])); // greedy: the argmax
    expect(new Set(draws.map((d) => d[1]))).toEqual(new Set([1])); // top-1: the argmax of its own row
    expect(new Set(draws.map((d) => d[2]))).toEqual(new Set([2, 3])); // top-2 of row 2: both occur, nothing else
    expect(new Set(draws.map((d) => d[3]))).toEqual(new Set([3])); // the 30% nucleus of row 3 is its top token alone
    logits.dispose();
  });
});

describe('HostSampler.unsupported', () => {
  it('names every parameter it cannot honour and points at lesson 12', () => {
    const sampler = new HostSampler();
    expect(sampler.unsupported(new SamplingParams({ temperature: 0.7, topK: 5, topP: 0.9, seed: 1 }))).toBeUndefined();
    expect(sampler.unsupported(new SamplingParams({ minP: 0.1, frequencyPenalty: 1, logprobs: 2 }))).toBe(
      "this lesson's sampler (lesson 03's HostSampler) has no minP, frequencyPenalty, logprobs; lesson 12's GPU sampler does",
    );
  });
});
