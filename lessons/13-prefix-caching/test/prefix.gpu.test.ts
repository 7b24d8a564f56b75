// Lesson 13 on CUDA (bf16, the Qwen3-0.6B shape): requests behind shared
// prefixes get the greedy tokens of lesson 12 (no prefix cache), in one batch
// (most of them prefill only their question, reading the prefix's K/V that
// another request computed) and again on the warm cache of a second call; and,
// down one forced token path, every logits row agrees with lesson 12's within
// bf16 tolerance (what to read if a near tie ever flips a greedy token).
import { describe, expect, it } from 'vitest';

import { cudaAvailable } from '@aios/engine-core';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import { recipe as baseline } from '@aios/lesson-12-sampling';

import { type Rows, expectBf16Agreement, runForced } from '../../../engine-core/test/forced-path.ts';
// The prefix cache alone (lesson 12's decode attention): the cache must not change a token. The
// cascade decode rounds differently from lesson 12's kernel; cascade.gpu.test.ts checks it, and
// says whether any token it changes is a near tie.
import { recipeWithoutCascade as prefixCaching } from '../src/recipe.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lesson 13 prefix.gpu.test: skipped: no usable CUDA device on this machine');

const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 977 + 13) % 150_000);
// 3 prefixes (one block-aligned, two not) x 5 questions, then two exact repeats (all cached but the last block / token).
const PREFIXES = [ids(512, 1), ids(300, 2), ids(1000, 3)];
const prompts = [
  ...Array.from({ length: 15 }, (_, i) => [...PREFIXES[i % 3]!, ...ids(20 + 7 * i, 100 + i)]),
  ids(512, 1),
  [...ids(300, 2), ...ids(16, 55)],
];
const greedy = new SamplingParams({ temperature: 0, maxTokens: 32, ignoreEos: true });

function run(recipe: Recipe, calls: number) {
  const model = ensureDefaultModel('gpu', () => {});
  const llm = LLM.create({ recipe, model, device: 'cuda:0', dtype: 'bf16', engine: { maxNumBatchedTokens: 4096, maxNumSeqs: 32 }, log: () => {} });
  try {
    return Array.from({ length: calls }, () => {
      const { outputs, stats } = llm.generateWithStats(prompts, greedy, { decodeText: false });
      return { tokens: outputs.map((o) => o.tokenIds), stats };
    });
  } finally {
    llm.dispose();
  }
}

describe.skipIf(!hasGpu)('lesson 13 on CUDA (bf16, Qwen3-0.6B shape) against lesson 12', () => {
  it("gives lesson 12's greedy tokens with shared prefixes, in one batch and on a warm cache", () => {
    const [ref] = run(baseline, 1);
    const [first, second] = run(prefixCaching, 2);
    const promptTokens = prompts.reduce((n, p) => n + p.length, 0);
    for (const [name, r] of [['first call', first!], ['second call', second!]] as const) {
      const pc = r.stats.prefixCache!;
      console.log(`lesson 13 ${name}: ${pc.hitTokens} of ${promptTokens} prompt tokens found cached; prefill ran ${r.stats.prefillTokens} (lesson 12: ${ref!.stats.prefillTokens})`);
      const differ = r.tokens.map((t, i) => (JSON.stringify(t) === JSON.stringify(ref!.tokens[i]) ? -1 : i)).filter((i) => i >= 0);
      if (differ.length) console.log(`lesson 13 ${name}: requests ${differ.join(', ')} differ from lesson 12`);
      expect(r.tokens).toEqual(ref!.tokens);
      expect(r.stats.prefillTokens).toBe(promptTokens - pc.hitTokens);
    }
    expect(first!.stats.prefixCache!.hitTokens).toBeGreaterThanOrEqual(12 * 288); // 4 more requests per prefix find at least its first 288 tokens
    expect(second!.stats.prefixCache!.hitTokens).toBeGreaterThan(first!.stats.prefixCache!.hitTokens);
  }, 600_000);

  it("agrees with lesson 12's logits within bf16 tolerance down a forced token path", () => {
    const opts = { model: ensureDefaultModel('gpu', () => {}), device: 'cuda:0' as const, dtype: 'bf16' as const, engine: { maxNumBatchedTokens: 4096, maxNumSeqs: 32 } };
    const forcedRun = (recipe: Recipe): Rows => runForced(recipe, { prompts, steps: 8 }, opts).rows;
    expectBf16Agreement('lesson 13 vs 12 on CUDA bf16, forced path', forcedRun(prefixCaching), forcedRun(baseline));
  }, 600_000);
});
