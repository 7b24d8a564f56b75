// Lesson 12's sampler on the CPU, through the engine (tiny model, f32): greedy gives
// lesson 11's tokens; a seeded request gives the same tokens alone and inside a batch
// of 64; log-probs reach the outputs and agree with a host log_softmax of the logits;
// penalties reach the device as one entry per distinct earlier token, kept up to
// date incrementally; every SamplingParams setting is accepted.
import { describe, expect, it } from 'vitest';

import { Tensor } from '@aios/engine-core';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { recipe as graphs } from '@aios/lesson-11-cuda-graphs';

import { randomArray } from '../../../engine-core/test/helpers.ts';
import { GpuSampler, PenaltyHistory, requestSeed, rowSpec } from '../src/gpu-sampler.ts';
import { recipe as sampling } from '../src/recipe.ts';
import { logSoftmax, topIndices } from './reference.ts';

const prompt = (i: number, n: number) => Array.from({ length: n }, (_, t) => (i * 7919 + t * 977 + 13) % 150_000);

function generate(recipe: Recipe, prompts: number[][], params: SamplingParams[]) {
  const llm = LLM.create({ recipe, device: 'cpu', dtype: 'f32', log: () => {} });
  try {
    return llm.generate(prompts, params, { decodeText: false });
  } finally {
    llm.dispose();
  }
}

describe('lesson 12 through the engine (CPU, tiny model)', () => {
  it("greedy: lesson 11's tokens", () => {
    const prompts = [11, 40, 1, 33, 70].map((n, i) => prompt(i, n));
    const params = [12, 3, 20, 7, 9].map((m) => new SamplingParams({ temperature: 0, maxTokens: m, ignoreEos: true }));
    const want = generate(graphs, prompts, params).map((o) => o.tokenIds);
    expect(generate(sampling, prompts, params).map((o) => o.tokenIds)).toEqual(want);
  });

  it('a seeded request: the same tokens alone and inside a batch of 64', () => {
    const init = { temperature: 0.9, topK: 40, topP: 0.95, minP: 0.01, repetitionPenalty: 1.1, maxTokens: 12, ignoreEos: true, seed: 4242 };
    const mine = new SamplingParams(init);
    const alone = generate(sampling, [prompt(99, 23)], [mine])[0]!.tokenIds;
    const prompts = Array.from({ length: 64 }, (_, i) => (i === 37 ? prompt(99, 23) : prompt(i, 5 + (i % 17))));
    const params = prompts.map((_, i) => (i === 37 ? mine : new SamplingParams({ temperature: (i % 4) * 0.4, topP: i % 3 ? 0.9 : 1, maxTokens: 3 + (i % 11), ignoreEos: true, seed: i % 5 ? i : undefined })));
    const batched = generate(sampling, prompts, params)[37]!.tokenIds;
    expect(batched).toEqual(alone);
    // Not a constant: another seed gives another sequence.
    expect(generate(sampling, [prompt(99, 23)], [new SamplingParams({ ...init, seed: 4243 })])[0]!.tokenIds).not.toEqual(alone);
  });

  it('log-probs reach the outputs: one per token, the chosen token among them, the top most likely first', () => {
    const [out] = generate(sampling, [prompt(3, 9)], [new SamplingParams({ temperature: 0.7, maxTokens: 6, ignoreEos: true, logprobs: 5, seed: 1 })]);
    expect(out!.logprobs).toHaveLength(6);
    out!.logprobs!.forEach((lp, i) => {
      expect(lp.token).toBe(out!.tokenIds[i]);
      expect(lp.logprob).toBeLessThan(0);
      expect(lp.top).toHaveLength(5);
      for (let j = 1; j < 5; j++) expect(lp.top[j]!.logprob).toBeLessThanOrEqual(lp.top[j - 1]!.logprob);
      expect(lp.logprob).toBeLessThanOrEqual(lp.top[0]!.logprob);
    });
  });

  it('accepts every SamplingParams setting (nothing unsupported)', () => {
    const all = { temperature: 0.5, topK: 3, topP: 0.5, minP: 0.2, repetitionPenalty: 1.3, presencePenalty: 1, frequencyPenalty: -1, logprobs: 20, seed: 9 };
    expect(new GpuSampler().unsupported(new SamplingParams(all))).toBeUndefined();
    const [out] = generate(sampling, [prompt(5, 4)], [new SamplingParams({ ...all, maxTokens: 4, ignoreEos: true })]);
    expect(out!.tokenIds).toHaveLength(4);
  });

  it('a strong presence penalty keeps a greedy output from repeating a token', () => {
    const free = generate(sampling, [prompt(1, 3)], [new SamplingParams({ temperature: 0, maxTokens: 24, ignoreEos: true })])[0]!.tokenIds;
    const penalized = generate(sampling, [prompt(1, 3)], [new SamplingParams({ temperature: 0, maxTokens: 24, ignoreEos: true, presencePenalty: 2, frequencyPenalty: 2 })])[0]!.tokenIds;
    expect(new Set(free).size).toBeLessThan(free.length); // the unpenalized greedy output repeats itself...
    expect(new Set(penalized).size).toBe(penalized.length); // ...the penalized one does not
  });
});

describe('GpuSampler', () => {
  it('builds one penalty entry per distinct earlier token, incrementally, and the device applies them', () => {
    const seq = new Sequence([5, 6, 5, 7], new SamplingParams({ repetitionPenalty: 1.5, presencePenalty: 0.5 }));
    const h = new PenaltyHistory(seq.promptIds);
    seq.append(6);
    seq.append(9);
    seq.append(9);
    h.update(seq.outputIds);
    h.update(seq.outputIds); // nothing new: nothing counted twice
    expect(Object.fromEntries(h.tokens)).toEqual({ 5: [0, 1], 6: [1, 1], 7: [0, 1], 9: [2, 0] });
    const words = new Int32Array(32);
    expect(h.write(3, seq.params, words, 0)).toBe(16);
    // Without a repetition penalty, prompt-only tokens change nothing and are left out.
    expect(h.write(3, new SamplingParams({ frequencyPenalty: 1 }), words, 0)).toBe(8);
    expect(Array.from(words.subarray(0, 8))).toEqual([3, 6, 1, 1, 3, 9, 2, 0]);
  });

  it('samples rows in the order given, with log-probs only for the rows that asked, from a logits tensor', () => {
    const V = 300;
    const seqs = [0, 1, 2].map((i) => new Sequence(prompt(i, 4), new SamplingParams({ temperature: i === 1 ? 0 : 0.8, logprobs: i === 2 ? 4 : undefined, seed: 7 })));
    const x = randomArray(3 * V, 21, 5);
    const logits = Tensor.fromArray(x, [3, V]);
    const r = new GpuSampler().sample(logits, seqs);
    logits.dispose();
    expect(r.tokens).toHaveLength(3);
    expect(r.tokens[1]).toBe(topIndices(x.subarray(V, 2 * V), 1)[0]);
    expect(r.logprobs?.[0]).toBeUndefined();
    const ref = logSoftmax(x.subarray(2 * V));
    expect(r.logprobs?.[2]?.token).toBe(r.tokens[2]);
    expect(r.logprobs?.[2]?.logprob).toBeCloseTo(ref[r.tokens[2]!]!, 5);
    expect(r.logprobs?.[2]?.top.map((t) => t.token)).toEqual(topIndices(x.subarray(2 * V), 4));
  });

  it('staged (parameters up before the forward, kernels launched after, ids read at the end) gives what sample() gives', () => {
    const V = 300;
    const seqs = [0, 1, 2, 3].map((i) => new Sequence(prompt(i, 5), new SamplingParams({ temperature: 0.9, topP: 0.8, seed: 11 + i, presencePenalty: i === 3 ? 0.5 : 0, logprobs: i === 2 ? 3 : undefined })));
    const x = randomArray(4 * V, 22, 5);
    const sampler = new GpuSampler('cpu', V);
    const direct = (() => {
      const logits = Tensor.fromArray(x, [4, V]);
      try {
        return new GpuSampler().sample(logits, seqs);
      } finally {
        logits.dispose();
      }
    })();
    const staged = sampler.stage(seqs);
    expect(() => staged.read()).toThrow(/read once, after its launch/);
    const logits = Tensor.fromArray(x, [4, V]); // the forward's output, made after the stage
    staged.launch(logits);
    expect(() => staged.launch(logits)).toThrow(/launched once/);
    expect(staged.read()).toEqual(direct);
    expect(() => staged.read()).toThrow(/read once/);
    sampler.stage(seqs).discard(); // a failed step: nothing read, nothing left
    expect(() => sampler.stage([new Sequence([1], new SamplingParams({ logprobs: 3 }))]).launch(Tensor.fromArray(x.subarray(0, 2 * V), [2, V]))).toThrow(/1 row specs for 2 logits rows/);
    expect(() => new GpuSampler().stage(seqs)).toThrow(/without a device and vocabulary size/);
    logits.dispose();
  });

  it("keys each row by its request's seed (or id) and the position it draws", () => {
    const seeded = new Sequence([1, 2, 3], new SamplingParams({ seed: 77 }));
    const unseeded = new Sequence([1, 2, 3], new SamplingParams({}));
    expect(requestSeed(seeded)).toBe(77);
    expect(requestSeed(unseeded)).toBe(Math.imul(unseeded.id, 0x9e3779b1) >>> 0);
    seeded.append(4);
    expect(rowSpec(seeded)).toMatchObject({ seed: 77, position: 4, logprobs: -1 });
  });
});
