// The CUDA backend's Qwen3 forward against transformers: the tiny model's committed
// fixture, and the Qwen3-0.6B shape against transformers run here and now on the same
// GPU (engine-core/scripts/golden_logits.py), where PyTorch and transformers are
// installed (the GPU host's oracle environment). Skips, saying why, elsewhere.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';
import { scratchDir } from './scratch.ts';

import { cudaAvailable } from '../src/index.ts';
import { compareWithGolden, readGolden } from '../src/model/golden.ts';
import { Qwen3Model } from '../src/model/qwen3.ts';
import { ensureDefaultModel } from '../src/model/resolve.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const hasGpu = cudaAvailable();
if (!hasGpu) console.log('qwen3.gpu.test: skipped: no usable CUDA device on this machine');

function hasTransformers(): boolean {
  try {
    execFileSync('python3', ['-c', 'import torch, transformers; assert torch.cuda.is_available()'], { stdio: 'ignore', timeout: 120_000 });
    return true;
  } catch {
    return false;
  }
}
const oracle = hasGpu && hasTransformers();
if (hasGpu && !oracle) console.log('qwen3.gpu.test: the 0.6B comparison is skipped: python3 cannot import torch and transformers with CUDA here');

describe.skipIf(!hasGpu)('Qwen3 forward on CUDA', () => {
  it('matches transformers within bf16 tolerance on the tiny model (rel. error < 2e-2)', () => {
    const golden = readGolden(path.join(here, 'fixtures', 'golden-qwen3-tiny-random.json'));
    const model = Qwen3Model.load(ensureDefaultModel('cpu', () => {}), { device: 'cuda:0', dtype: 'bf16' });
    const r = compareWithGolden(model, golden);
    model.dispose();
    console.log(`golden (CUDA bf16 vs ${golden.oracle} ${golden.dtype}): rel. error ${r.relError.toExponential(2)}, argmax agreement ${r.argmaxAgreement}`);
    expect(r.relError).toBeLessThan(2e-2);
    expect(r.argmaxAgreement).toBeGreaterThan(0.9);
  });

  // Measured on an H200 (docs/equivalence.md): f32 8.8e-7 rel. error and 1e-7 row norms; bf16 against f32 1.4e-2 and 4.1e-4.
  it.skipIf(!oracle)('matches transformers on the Qwen3-0.6B shape, short and long prompts: f32 within 5e-6, bf16 within 2e-2', () => {
    const dir = ensureDefaultModel('gpu', () => {});
    const out = path.join(scratchDir('aios-golden-'), 'golden-0.6b-f32.json');
    execFileSync('python3', [path.join(here, '..', 'scripts', 'golden_logits.py'), dir, out, '--dtype', 'float32', '--device', 'cuda'], { stdio: 'inherit', timeout: 600_000 });
    const golden = readGolden(out);
    for (const [dtype, relBound, normBound, argmax] of [['f32', 5e-6, 5e-6, 1], ['bf16', 2e-2, 5e-3, 0.9]] as const) {
      const model = Qwen3Model.load(dir, { device: 'cuda:0', dtype });
      const r = compareWithGolden(model, golden);
      model.dispose();
      console.log(`golden 0.6B (CUDA ${dtype} vs ${golden.oracle} float32): ${r.positions} positions up to ${r.maxPosition}, rel. error ${r.relError.toExponential(2)}, row norm ${r.maxRowNormRelDiff.toExponential(2)}, argmax ${r.argmaxAgreement}`);
      expect(r.maxPosition).toBeGreaterThanOrEqual(1500);
      expect(r.relError).toBeLessThan(relBound);
      expect(r.maxRowNormRelDiff).toBeLessThan(normBound);
      expect(r.argmaxAgreement).toBeGreaterThanOrEqual(argmax);
    }
  }, 900_000);
});
