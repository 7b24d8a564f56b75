// Lessons 09 and 10 on the CPU (the tiny model with head_dim 64, f32): the
// FlashAttention recipe and the fused forward compute lesson 08's tokens exactly
// (the fused kernels round where the unfused ops do; on the host every flash
// version runs the CPU reference), with and without preemption; and lesson 10's
// forward allocates no memory at all once built, where lesson 09's allocates for
// every op.
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { allocatorStats } from '@aios/engine-core';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { EngineOptions, Recipe, StepPlan } from '@aios/engine-core/engine/types.ts';
import { recipe as continuous } from '@aios/lesson-08-continuous-batching';
import { PRESETS } from '@aios/engine-core/model/config.ts';
import { writeRandomModel } from '@aios/engine-core/model/random.ts';
import { FLASH_HEAD_DIMS, recipe as flash } from '@aios/lesson-09-flash-attention';

import { scratchDir } from '../../../engine-core/test/scratch.ts';
import { recipe as fused } from '../src/recipe.ts';

// The tiny preset's head_dim is 32, which the FlashAttention kernels are not built for: lesson 09's
// op would fall back to lesson 07's kernel and this test would compare lesson 08 with itself.
const CFG = { ...PRESETS.tiny, headDim: 64 };
const MODEL = path.join(scratchDir('aios-tiny-d64-'), 'model');
writeRandomModel(MODEL, CFG, { preset: 'tiny, head_dim 64', seed: 5 });

const prompts = [11, 40, 1, 33, 70].map((n, p) => Array.from({ length: n }, (_, i) => (p * 7919 + i * 977 + 13) % 150_000));
const MAX = [12, 3, 20, 7, 9];
const greedy = MAX.map((m) => new SamplingParams({ temperature: 0, maxTokens: m, ignoreEos: true }));
const sampled = MAX.map((m, i) => new SamplingParams({ temperature: 0.8, maxTokens: m, ignoreEos: true, seed: 40 + i }));
const BLOCK_BYTES = 2 * CFG.numLayers * CFG.numKvHeads * CFG.headDim * 4 * 16; // f32 K and V of a 16-token block

function run(recipe: Recipe, params: SamplingParams[], engine: Partial<EngineOptions> = {}) {
  const llm = LLM.create({ recipe, model: MODEL, device: 'cpu', dtype: 'f32', engine, log: () => {} });
  try {
    const { outputs, stats } = llm.generateWithStats(prompts, params, { decodeText: false });
    return { tokens: outputs.map((o) => o.tokenIds), stats };
  } finally {
    llm.dispose();
  }
}

describe('lessons 09 and 10 compute lesson 08 on the CPU', () => {
  it("runs lesson 09's kernels' path, not the fallback", () => {
    expect(FLASH_HEAD_DIMS).toContain(CFG.headDim);
  });

  for (const [name, params] of [['greedy', greedy], ['seeded samples', sampled]] as const)
    it(`${name}: identical tokens, also when a 6-block pool forces preemptions`, () => {
      const ref = run(continuous, params).tokens;
      expect(run(flash, params).tokens).toEqual(ref);
      expect(run(fused, params).tokens).toEqual(ref);
      const tight = run(fused, params, { kvCacheBytes: 6 * BLOCK_BYTES });
      expect(tight.stats.preemptions).toBeGreaterThan(0);
      expect(tight.tokens).toEqual(ref);
    });
});

describe("lesson 10's forward", () => {
  /** Requests to the allocator made inside each runner.run of a generate call. */
  function allocationsPerForward(recipe: Recipe): number[] {
    const counts: number[] = [];
    const counting: Recipe = {
      ...recipe,
      build(ctx) {
        const parts = recipe.build(ctx);
        const inner = parts.runner;
        return {
          ...parts,
          runner: {
            run(plan: StepPlan) {
              const before = allocatorStats('cpu').requests;
              const logits = inner.run(plan);
              counts.push(allocatorStats('cpu').requests - before);
              return logits;
            },
            release: (s) => inner.release(s),
            dispose: () => inner.dispose(),
          },
        };
      },
    };
    run(counting, greedy);
    return counts;
  }

  it('allocates nothing, prefill or decode; the op-by-op forward allocates for every op', () => {
    const fusedCounts = allocationsPerForward(fused);
    expect(fusedCounts.length).toBeGreaterThan(10);
    expect(new Set(fusedCounts)).toEqual(new Set([0]));
    const plain = allocationsPerForward(flash);
    expect(Math.min(...plain)).toBeGreaterThan(3 * 10); // 3 layers x 11 ops that return a fresh output (the rest work in place)
  });
});
