// Lessons 07 and 08 on CUDA in bf16 compute what lesson 06 computes, down one
// forced token path (engine-core/test/forced-path.ts). The batched lessons run
// other GEMM shapes (all sequences at once) and another attention kernel, so
// bf16 rounding differs: they must agree within the bf16 tolerance used for
// lessons 03-06 (2e-2, argmax agreement 0.9).
import { beforeAll, describe, expect, it } from 'vitest';

import { cudaAvailable } from '@aios/engine-core';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import { pagedRecipe } from '@aios/lesson-06-paged-kv-cache';
import { recipe as batching } from '@aios/lesson-07-batching';

import { type Rows, compareRows, expectBf16Agreement, runForced } from '../../../engine-core/test/forced-path.ts';
import { recipe as continuous } from '../src/recipe.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lessons 07-08 batched.gpu.test: skipped: no usable CUDA device on this machine');

// Distinct prompt lengths (a sequence is known by its length), crossing 16-token blocks; one long enough for a multi-block context.
const path = { promptLengths: [11, 40, 70, 1, 300], steps: 12 };

describe.skipIf(!hasGpu)('lessons 07-08 on CUDA (bf16) against lesson 06', () => {
  let rows: { paged: Rows; batching: Rows; continuous: Rows };
  const described: string[] = [];
  beforeAll(() => {
    const opts = { model: ensureDefaultModel('cpu', () => {}), device: 'cuda:0' as const, engine: { maxNumBatchedTokens: 2048 } };
    const run = (r: Parameters<typeof runForced>[0]) => {
      const out = runForced(r, path, opts);
      described.push(...out.described);
      return out.rows;
    };
    const paged = pagedRecipe({ warmupTokens: 256, cpuPoolBytes: 8 * 2 ** 20 });
    rows = { paged: run(paged), batching: run(batching), continuous: run(continuous) };
  }, 300_000);

  it('produce a logits row for every step of every prompt, from a pool sized by a measured warm-up step', () => {
    for (const r of Object.values(rows)) expect(r.size).toBe(path.promptLengths.length * path.steps);
    expect(described.join('\n')).toMatch(/KV pool: \d+ blocks .* of activations measured in a 2048-token warm-up step/);
  });

  for (const name of ['batching', 'continuous'] as const)
    it(`lesson ${name === 'batching' ? '07' : '08'} agrees with lesson 06 within bf16 tolerance`, () => {
      expectBf16Agreement(`lesson ${name} vs 06 on CUDA bf16`, rows[name], rows.paged);
    });

  it('07 and 08 run the same kernels on the same schedule here (everything fits one batch): identical logits', () => {
    expect(compareRows(rows.continuous, rows.batching).relError).toBe(0);
  });
});
