// SamplingParams: every field's range is checked at construction, with a message that names the field.
import { describe, expect, it } from 'vitest';

import { GREEDY_BELOW_TEMPERATURE, MAX_TOP_LOGPROBS, SamplingParams } from '../src/engine/sampling-params.ts';

describe('SamplingParams', () => {
  it('defaults to plain sampling at temperature 1 with every filter and penalty off', () => {
    const p = new SamplingParams();
    expect([p.temperature, p.topK, p.topP, p.minP, p.repetitionPenalty, p.presencePenalty, p.frequencyPenalty, p.logprobs]).toEqual([1, 0, 1, 0, 1, 0, 0, undefined]);
    expect(p.penalized).toBe(false);
    expect(new SamplingParams({ frequencyPenalty: 0.5 }).penalized).toBe(true);
    expect(new SamplingParams({ repetitionPenalty: 1.1 }).penalized).toBe(true);
  });

  const bad: [Record<string, unknown>, RegExp][] = [
    [{ temperature: -0.1 }, /temperature must be a finite number >= 0, got -0.1/],
    [{ temperature: Infinity }, /temperature/],
    [{ topK: 1.5 }, /topK must be an integer in \[0, 2\^31 - 1\]/],
    [{ topK: 3_000_000_000 }, /topK must be an integer in \[0, 2\^31 - 1\]/], // past the kernels' int32
    [{ temperature: 1e39 }, /temperature must be a finite number/], // infinite as a float32
    [{ repetitionPenalty: 1e300 }, /repetitionPenalty must be a finite number > 0/],
    [{ repetitionPenalty: 1e-300 }, /repetitionPenalty must be a finite number > 0/], // 0 as a float32
    [{ topP: 0 }, /topP must be in \(0, 1\], got 0/],
    [{ minP: 1.5 }, /minP must be in \[0, 1\], got 1.5/],
    [{ minP: Number.NaN }, /minP/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty must be a finite number > 0 \(1 = off\), got 0/],
    [{ presencePenalty: 2.5 }, /presencePenalty must be in \[-2, 2\], got 2.5/],
    [{ frequencyPenalty: -3 }, /frequencyPenalty must be in \[-2, 2\], got -3/],
    [{ logprobs: MAX_TOP_LOGPROBS + 1 }, /logprobs must be an integer in \[0, 20\]/],
    [{ logprobs: -1 }, /logprobs/],
    [{ maxTokens: 0 }, /maxTokens must be an integer >= 1/],
    [{ seed: -1 }, /seed must be a non-negative integer/],
    [{ stop: [''] }, /stop must be a list of non-empty strings/],
  ];
  it.each(bad)('refuses %o', (init, message) => {
    expect(() => new SamplingParams(init as never)).toThrow(RangeError);
    expect(() => new SamplingParams(init as never)).toThrow(message);
  });

  it('treats a temperature too small to differ from 0 as greedy (1/T would overflow a float32)', () => {
    expect(new SamplingParams({ temperature: 1e-39 }).greedy).toBe(true);
    expect(new SamplingParams({ temperature: GREEDY_BELOW_TEMPERATURE / 2 }).greedy).toBe(true);
    expect(new SamplingParams({ temperature: GREEDY_BELOW_TEMPERATURE }).greedy).toBe(false);
  });

  it('accepts the edges of each range', () => {
    expect(() => new SamplingParams({ temperature: 0, topP: 1, minP: 1, presencePenalty: -2, frequencyPenalty: 2, logprobs: 0 })).not.toThrow();
    expect(new SamplingParams({ logprobs: MAX_TOP_LOGPROBS }).logprobs).toBe(MAX_TOP_LOGPROBS);
  });
});

describe('SamplingParams.with', () => {
  it('keeps every field it is not asked to change, and checks the changed ones', () => {
    const p = new SamplingParams({ temperature: 0.7, topK: 5, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, presencePenalty: 0.5, frequencyPenalty: -0.5, logprobs: 3, maxTokens: 9, ignoreEos: true, stop: ['x'], stopTokenIds: [7], seed: 1 });
    const q = p.with({ seed: 2 });
    expect({ ...q, seed: 1 }).toEqual({ ...p });
    expect(q.seed).toBe(2);
    expect(new SamplingParams().with({}).logprobs).toBeUndefined();
    expect(() => p.with({ topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
  });
});
