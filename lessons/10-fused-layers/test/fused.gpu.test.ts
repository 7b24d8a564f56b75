// Lessons 09 (FlashAttention kernels) and 10 (fused forward) on CUDA in bf16,
// on the Qwen3-0.6B shape (head_dim 128: the flash kernels' size), against
// lesson 08 down one forced token path: within the bf16 tolerance used for
// lessons 03-08 (relative error 2e-2, argmax agreement 0.9).
import { beforeAll, describe, expect, it } from 'vitest';

import { cudaAvailable } from '@aios/engine-core';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import { recipe as continuous } from '@aios/lesson-08-continuous-batching';
import { recipe as flash } from '@aios/lesson-09-flash-attention';

import { type Rows, expectBf16Agreement, runForced } from '../../../engine-core/test/forced-path.ts';
import { recipe as fused } from '../src/recipe.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lessons 09-10 fused.gpu.test: skipped: no usable CUDA device on this machine');

// Prompts of 1 to 900 tokens: prefills that span several key tiles, then decode steps.
const path = { promptLengths: [11, 40, 130, 1, 900], steps: 10 };

describe.skipIf(!hasGpu)('lessons 09-10 on CUDA (bf16, Qwen3-0.6B shape) against lesson 08', () => {
  let rows: { l08: Rows; l09: Rows; l10: Rows };
  beforeAll(() => {
    const model = ensureDefaultModel('gpu', () => {});
    const opts = { model, device: 'cuda:0' as const, engine: { maxNumBatchedTokens: 2048 } };
    rows = { l08: runForced(continuous, path, opts).rows, l09: runForced(flash, path, opts).rows, l10: runForced(fused, path, opts).rows };
  }, 600_000);

  for (const name of ['l09', 'l10'] as const)
    it(`lesson ${name.slice(1)} agrees with lesson 08 within bf16 tolerance`, () => {
      expectBf16Agreement(`lesson ${name.slice(1)} vs 08 on CUDA bf16 (0.6B shape)`, rows[name], rows.l08);
    });
});
