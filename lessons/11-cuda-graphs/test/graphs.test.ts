// Lesson 11 on the CPU (tiny model, f32): decode steps padded to the graphs'
// bucket layouts compute lesson 10's tokens exactly (the padding rows store no
// K/V and their logits are dropped), with and without preemption; the buckets
// are the ones vLLM and nano-vllm use.
import { describe, expect, it } from 'vitest';

import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { EngineOptions, Recipe } from '@aios/engine-core/engine/types.ts';
import { BatchedRunner } from '@aios/lesson-07-batching';
import { recipe as fused } from '@aios/lesson-10-fused-layers';

import { GraphStepModel, batchBuckets, contextBuckets } from '../src/graph-model.ts';
import { persistentDecodeSwitch } from '../src/persistent-decode.ts';
import { recipe as graphs } from '../src/recipe.ts';

const prompts = [11, 40, 1, 33, 70].map((n, p) => Array.from({ length: n }, (_, i) => (p * 7919 + i * 977 + 13) % 150_000));
const MAX = [12, 3, 20, 7, 9];
const greedy = MAX.map((m) => new SamplingParams({ temperature: 0, maxTokens: m, ignoreEos: true }));
const sampled = MAX.map((m, i) => new SamplingParams({ temperature: 0.8, maxTokens: m, ignoreEos: true, seed: 70 + i }));
const BLOCK_BYTES = 2 * 3 * 2 * 32 * 4 * 16;

function run(recipe: Recipe, params: SamplingParams[], engine: Partial<EngineOptions> = {}) {
  const llm = LLM.create({ recipe, device: 'cpu', dtype: 'f32', engine, log: () => {} });
  try {
    const { outputs, stats } = llm.generateWithStats(prompts, params, { decodeText: false });
    const runner = llm.parts.runner;
    const counts = runner instanceof BatchedRunner && runner.model instanceof GraphStepModel ? { ...runner.model.counts } : undefined;
    return { tokens: outputs.map((o) => o.tokenIds), stats, counts, described: llm.parts.describe?.() ?? [] };
  } finally {
    llm.dispose();
  }
}

describe('lesson 11 on the CPU', () => {
  it('buckets: 1, 2, 4, 8, then every 16 up to the limit; contexts 1k, 4k, 16k and the longest', () => {
    expect(batchBuckets(256)).toEqual([1, 2, 4, 8, ...Array.from({ length: 16 }, (_, i) => 16 * (i + 1))]);
    expect(batchBuckets(40)).toEqual([1, 2, 4, 8, 16, 32, 40]);
    expect(batchBuckets(3)).toEqual([1, 2, 3]);
    expect(contextBuckets(40960)).toEqual([1024, 4096, 16384, 40960]);
    expect(contextBuckets(4096)).toEqual([1024, 4096]);
  });

  it('AIOS_PERSISTENT_DECODE: off unless 1; any other value is refused with its name', () => {
    expect(persistentDecodeSwitch({})).toBe(false);
    expect(persistentDecodeSwitch({ AIOS_PERSISTENT_DECODE: '0' })).toBe(false);
    expect(persistentDecodeSwitch({ AIOS_PERSISTENT_DECODE: '1' })).toBe(true);
    expect(() => persistentDecodeSwitch({ AIOS_PERSISTENT_DECODE: 'yes' })).toThrow('AIOS_PERSISTENT_DECODE must be one of 0, 1, got "yes"');
  });

  for (const [name, params] of [['greedy', greedy], ['seeded samples', sampled]] as const)
    it(`${name}: padded decode steps give lesson 10's tokens, also with preemptions`, () => {
      const ref = run(fused, params).tokens;
      const r = run(graphs, params, { maxNumSeqs: 8 });
      expect(r.tokens).toEqual(ref);
      // Every decode step found a bucket (5 sequences at most: bucket 8) and ran in its padded layout.
      expect(r.counts?.eager).toBe(0);
      expect(r.counts?.padded).toBeGreaterThanOrEqual(Math.max(...MAX) - 1);
      expect(r.described.join('\n')).toMatch(/no CUDA graphs on the CPU: decode steps run eagerly in the graphs' \d+ padded layouts/);
      const tight = run(graphs, params, { maxNumSeqs: 8, kvCacheBytes: 6 * BLOCK_BYTES });
      expect(tight.stats.preemptions).toBeGreaterThan(0);
      expect(tight.tokens).toEqual(ref);
    });
});
