// Lessons 03-06 compute the same function: on the CPU in f32 every recipe
// produces the same tokens, greedy and sampled (a sampled token flips at the
// smallest change in the logits), and the paged cache holds at most one block
// of slack per sequence where the preallocated one reserves the maximum length;
// its pool follows the engine options (block size, kvCacheBytes).
import { describe, expect, it } from 'vitest';

import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { recipe as baseline } from '@aios/lesson-03-baseline-engine';
import { recipe as kvCache } from '@aios/lesson-04-kv-cache';
import { recipe as preallocated } from '@aios/lesson-05-preallocated-cache';

import { pagedRecipe } from '../src/recipe.ts';

const paged = pagedRecipe({ warmupTokens: 64, cpuPoolBytes: 8 * 2 ** 20 });
const recipes: Recipe[] = [baseline, kvCache, preallocated, paged];
const prompts = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], Array.from({ length: 40 }, (_, i) => (i * 977) % 150000), 'The engine computes the same function in every lesson.'];

function run(recipe: Recipe, params: SamplingParams[]) {
  const llm = LLM.create({ recipe, device: 'cpu', dtype: 'f32', log: () => {} });
  try {
    return llm.generateWithStats(prompts, params, { decodeText: false });
  } finally {
    llm.dispose();
  }
}

describe('lessons 03-06 on the CPU (f32)', () => {
  const greedy = prompts.map(() => new SamplingParams({ temperature: 0, maxTokens: 12, ignoreEos: true }));
  const sampled = prompts.map((_, i) => new SamplingParams({ temperature: 1.0, maxTokens: 12, ignoreEos: true, seed: 1000 + i }));
  const results = recipes.map((r) => ({ name: r.name, greedy: run(r, greedy), sampled: run(r, sampled) }));

  it('generate identical greedy tokens', () => {
    const ref = results[0]!.greedy.outputs.map((o) => o.tokenIds);
    for (const r of results.slice(1)) expect(r.greedy.outputs.map((o) => o.tokenIds), r.name).toEqual(ref);
  });

  it('generate identical sampled tokens with the same seeds (and the samples do vary)', () => {
    const ref = results[0]!.sampled.outputs.map((o) => o.tokenIds);
    expect(new Set(ref.flat()).size).toBeGreaterThan(20);
    for (const r of results.slice(1)) expect(r.sampled.outputs.map((o) => o.tokenIds), r.name).toEqual(ref);
  });

  it('reserve what each design promises', () => {
    const pre = results[2]!.greedy.stats.kvCache!, pg = results[3]!.greedy.stats.kvCache!;
    // Preallocated: the longest prompt + maxTokens is reserved from the first step (prompt 40 + 12).
    const bytesPerToken = pre.peakReservedBytes / (40 + 12);
    expect(Number.isInteger(bytesPerToken)).toBe(true);
    // The last sampled token never runs through the model, so at most 40 + 11 tokens are cached.
    expect(pre.peakUsedBytes).toBe((40 + 11) * bytesPerToken);
    // Paged: at the peak (51 tokens) 4 blocks of 16 are held: less than one block of slack.
    expect(pg.peakUsedBytes).toBe((40 + 11) * bytesPerToken);
    expect(pg.peakReservedBytes - pg.peakUsedBytes).toBeLessThan(16 * bytesPerToken);
    // Everything is returned at the end.
    expect(pg.reservedBytes).toBe(0);
    expect(pre.reservedBytes).toBe(0);
  });
});

describe("lesson 06's pool follows the engine options", () => {
  it('takes its block size and kvCacheBytes from them (the record says so)', () => {
    const llm = LLM.create({ recipe: paged, device: 'cpu', dtype: 'f32', log: () => {}, engine: { blockSize: 8, kvCacheBytes: 3 * 2 ** 20 } });
    try {
      const lines = llm.parts.describe?.() ?? [];
      const { numLayers, numKvHeads, headDim } = llm.cfg;
      const perBlock = 8 * 2 * numLayers * numKvHeads * headDim * 4; // f32
      expect(lines).toContain(`KV pool: ${Math.floor((3 * 2 ** 20) / perBlock)} blocks of 8 tokens = 0.00 GiB (the kvCacheBytes engine option)`);
      // A sequence of 40 + 12 tokens peaks at 7 blocks of 8 (51 cached tokens), not 4 of 16.
      const out = llm.generateWithStats([prompts[1]!], [new SamplingParams({ temperature: 0, maxTokens: 12, ignoreEos: true })], { decodeText: false });
      const kv = out.stats.kvCache!;
      expect(kv.peakReservedBytes / kv.peakUsedBytes).toBeCloseTo(56 / 51, 10);
    } finally {
      llm.dispose();
    }
  });
});
