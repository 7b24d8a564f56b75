// Lesson 13's cascade decode end to end on the CPU (tiny model, f32): requests
// over two long shared prefixes (300 and 520 tokens: one and two 256-key shared
// splits) and one request alone; the greedy tokens equal lesson 12's and those
// of lesson 13 without the cascade, and the decode steps read fewer keys than
// the plain decode would (the cascade engaged: the scheduler kept each
// prefix's sequences adjacent, and their tables hold the same blocks). The
// recipe's graph model runs the cascade only for steps that share a prefix
// (AttentionVariants): the last steps, one sequence left, run the plain decode.
import { describe, expect, it } from 'vitest';

import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Recipe, StepPlan } from '@aios/engine-core/engine/types.ts';
import { batchedRecipe } from '@aios/lesson-07-batching';
import { lesson12Parts, recipe as sampling } from '@aios/lesson-12-sampling';

import { type CascadeStats, cascadeAttentionOp, sharesPrefix } from '../src/cascade-attention.ts';
import { prefixCachingParts, recipe as lesson13, recipeWithoutCascade } from '../src/recipe.ts';

const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 977 + 13) % 150_000);
const P1 = ids(300, 11), P2 = ids(520, 12);
const prompts = [
  [...P1, ...ids(7, 1)],
  [...P1, ...ids(20, 2)],
  [...P2, ...ids(3, 3)],
  ids(40, 4),
  [...P2, ...ids(33, 5)],
  [...P1, ...ids(1, 6)],
  [...P2, ...ids(18, 7)],
];
const MAX = [6, 8, 5, 7, 6, 9, 4];
const greedy = MAX.map((m) => new SamplingParams({ temperature: 0, maxTokens: m, ignoreEos: true }));

/** Decode steps per attention variant, from the graph model's describe() line. */
function variantSteps(described: string[]): { plain: number; cascade: number } {
  const line = described.find((l) => l.startsWith('decode steps so far')) ?? '';
  const m = /per attention variant (\d+) \/ (\d+)/.exec(line);
  if (!m) throw new Error(`no per-variant counts in "${line}"`);
  return { plain: Number(m[1]), cascade: Number(m[2]) };
}

let layers = 0;

/** The greedy tokens; `described` gets the parts' describe() lines after the run. */
function tokens(recipe: Recipe, described?: string[]): number[][] {
  const llm = LLM.create({ recipe, device: 'cpu', dtype: 'f32', log: () => {} });
  try {
    layers = llm.engine.cfg.numLayers;
    const out = llm.generateWithStats(prompts, greedy, { decodeText: false }).outputs.map((o) => o.tokenIds);
    described?.push(...(llm.parts.describe?.() ?? []));
    return out;
  } finally {
    llm.dispose();
  }
}

describe('sharesPrefix (which variant a step runs)', () => {
  const plan = (phase: 'decode' | 'prefill', tables: number[][]) => ({ phase, sequences: [], newTokens: [], blockTables: tables }) as unknown as StepPlan;
  it('is true only for a decode step with two neighbours on the same first block', () => {
    expect(sharesPrefix(plan('decode', [[3, 4], [3, 9], [7]]))).toBe(true);
    expect(sharesPrefix(plan('decode', [[3, 4], [7, 4], [3]]))).toBe(false); // the same block, not neighbours: the kernels find no run
    expect(sharesPrefix(plan('decode', [[5]]))).toBe(false);
    expect(sharesPrefix(plan('prefill', [[3], [3]]))).toBe(false);
  });
});

describe('lesson 13 cascade decode on the CPU (f32)', () => {
  it("gives lesson 12's greedy tokens and lesson 13's without the cascade, reading fewer keys", () => {
    const ref = tokens(sampling);
    expect(tokens(recipeWithoutCascade)).toEqual(ref);
    const stats: CascadeStats = { calls: 0, keysRead: 0, plainKeys: 0 };
    const counted = batchedRecipe('prefix-caching-counted', 13, 'lesson 13 with the cascade counting its keys', { ...prefixCachingParts, attention: cascadeAttentionOp(lesson12Parts.attention, stats) });
    const describedCounted: string[] = [];
    expect(tokens(counted, describedCounted)).toEqual(ref);
    // The op ran the cascade exactly in the steps that asked for it: once a layer in each (the plain ones went to lesson 12's decode).
    const countedSteps = variantSteps(describedCounted);
    expect(countedSteps.plain).toBeGreaterThan(0);
    expect(stats.calls).toBe(countedSteps.cascade * layers);
    const described: string[] = [];
    expect(tokens(lesson13, described)).toEqual(ref);
    // Decode steps per variant (plain / cascade): both ran, the cascade only where a prefix was shared.
    const { plain, cascade } = variantSteps(described);
    expect(plain).toBeGreaterThan(0);
    expect(cascade).toBeGreaterThan(plain);
    expect(stats.calls).toBeGreaterThan(0);
    // Every decode step holds P1's and P2's groups while they last: the shared splits are read once.
    expect(stats.keysRead, `${stats.keysRead} of ${stats.plainKeys} keys over ${stats.calls} calls`).toBeLessThan(0.7 * stats.plainKeys);
    console.log(`cascade-engine: ${stats.keysRead} of ${stats.plainKeys} keys read over ${stats.calls} decode calls`);
  });
});
