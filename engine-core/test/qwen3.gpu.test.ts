// The CUDA backend's Qwen3 forward in bf16 against transformers' f32 logits.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { cudaAvailable } from '../src/index.ts';
import { compareWithGolden, readGolden } from '../src/model/golden.ts';
import { Qwen3Model } from '../src/model/qwen3.ts';
import { ensureDefaultModel } from '../src/model/resolve.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('qwen3.gpu.test: skipped: no usable CUDA device on this machine');

describe.skipIf(!hasGpu)('Qwen3 forward on CUDA', () => {
  it('matches transformers within bf16 tolerance (rel. error < 2e-2)', () => {
    const golden = readGolden(path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'golden-qwen3-tiny-random.json'));
    const model = Qwen3Model.load(ensureDefaultModel('cpu', () => {}), { device: 'cuda:0', dtype: 'bf16' });
    const r = compareWithGolden(model, golden);
    model.dispose();
    console.log(`golden (CUDA bf16 vs ${golden.oracle} ${golden.dtype}): rel. error ${r.relError.toExponential(2)}, argmax agreement ${r.argmaxAgreement}`);
    expect(r.relError).toBeLessThan(2e-2);
    expect(r.argmaxAgreement).toBeGreaterThan(0.9);
  });
});
