// Lessons 03-06 on CUDA in bf16 compute the same function. Every lesson is
// driven down the same token path (a sampler that records each logits row and
// returns a fixed next token), so their logits can be compared step by step:
// lesson 03 recomputes the whole sequence each step (other matmul shapes, so
// other bf16 roundings) and must agree within a bf16 tolerance; lessons 04, 05
// and 06 run the same kernels on the same K/V rows, only stored differently
// (concatenated, preallocated, paged), so they must agree exactly.
import { beforeAll, describe, expect, it } from 'vitest';

import { cudaAvailable } from '@aios/engine-core';
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import { recipe as baseline } from '@aios/lesson-03-baseline-engine';
import { recipe as kvCache } from '@aios/lesson-04-kv-cache';
import { recipe as preallocated } from '@aios/lesson-05-preallocated-cache';

import { type Rows, compareRows as compare, runForced } from '../../../engine-core/test/forced-path.ts';
import { pagedRecipe } from '../src/recipe.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lessons 03-06 equivalence.gpu.test: skipped: no usable CUDA device on this machine');

// Prompt lengths that cross 16-token block boundaries, distinct so a sequence is known by its length
// (the forced path: engine-core/test/forced-path.ts).
const path = { promptLengths: [11, 40, 70], steps: 12 };

/** What each run's parts said about themselves (the paged pool's size and basis). */
const described: string[] = [];

function run(recipe: Recipe): Rows {
  const out = runForced(recipe, path, { model: ensureDefaultModel('cpu', () => {}), device: 'cuda:0' });
  described.push(...out.described);
  return out.rows;
}

describe.skipIf(!hasGpu)('lessons 03-06 on CUDA (bf16)', () => {
  const paged = pagedRecipe({ warmupTokens: 256, cpuPoolBytes: 8 * 2 ** 20 });
  let rows: { baseline: Rows; kvCache: Rows; preallocated: Rows; paged: Rows };
  // In a hook, not the describe body: a skipped suite's body still runs while tests are collected.
  beforeAll(() => {
    rows = { baseline: run(baseline), kvCache: run(kvCache), preallocated: run(preallocated), paged: run(paged) };
  }, 300_000);

  it('produce a logits row for every step of every prompt', () => {
    for (const r of Object.values(rows)) expect(r.size).toBe(path.promptLengths.length * path.steps);
    // The pool was sized from the card's free memory, not a CPU default.
    expect(described.join('\n')).toMatch(/KV pool: \d+ blocks .*GiB free after weights and a 256-token warm-up/);
  });

  it('lesson 03 (recompute) and lesson 04 (KV cache) agree within bf16 tolerance', () => {
    const c = compare(rows.kvCache, rows.baseline);
    console.log(`lesson 04 vs 03 on CUDA bf16: rel. error ${c.relError.toExponential(2)}, max |diff| ${c.maxAbs.toExponential(2)}, argmax agreement ${c.argmaxAgreement.toFixed(3)}`);
    expect(c.relError).toBeLessThan(2e-2);
    expect(c.argmaxAgreement).toBeGreaterThanOrEqual(0.9);
  });

  it('lessons 04, 05 and 06 give identical logits: the same K/V rows, only stored differently', () => {
    const c45 = compare(rows.preallocated, rows.kvCache);
    const c56 = compare(rows.paged, rows.preallocated);
    console.log(`lesson 05 vs 04: max |diff| ${c45.maxAbs}; lesson 06 vs 05: max |diff| ${c56.maxAbs}`);
    expect(c45.maxAbs).toBe(0);
    expect(c56.maxAbs).toBe(0);
  });
});
