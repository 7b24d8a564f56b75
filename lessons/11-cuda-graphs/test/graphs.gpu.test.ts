// Lesson 11 on CUDA (bf16, the Qwen3-0.6B shape): decode replayed from CUDA
// graphs gives lesson 10's logits within bf16 tolerance (the same kernels; the
// decode kernel may split a bucket's context differently from an exact step's),
// and the decode steps are replayed, not run eagerly. The same with the
// persistent decode kernel switched on (AIOS_PERSISTENT_DECODE=1): every step of
// this path (5 sequences, the 8-row bucket) replays it, and its logits (its own
// projections, attention and sums) agree with lesson 10's within bf16 tolerance.
import { beforeAll, describe, expect, it } from 'vitest';

import { cudaAvailable } from '@aios/engine-core';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import { recipe as fused } from '@aios/lesson-10-fused-layers';

import { type Rows, compareRows, runForced } from '../../../engine-core/test/forced-path.ts';
import { recipe as graphs } from '../src/recipe.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lesson 11 graphs.gpu.test: skipped: no usable CUDA device on this machine');

const path = { promptLengths: [11, 40, 130, 1, 900], steps: 10 };

describe.skipIf(!hasGpu)('lesson 11 on CUDA (bf16, Qwen3-0.6B shape) against lesson 10', () => {
  let rows: { l10: Rows; l11: Rows; persistent: Rows };
  let described: string[] = [];
  let describedPersistent: string[] = [];
  beforeAll(() => {
    const model = ensureDefaultModel('gpu', () => {});
    const opts = { model, device: 'cuda:0' as const, engine: { maxNumBatchedTokens: 2048, maxNumSeqs: 32 } };
    const before = process.env.AIOS_PERSISTENT_DECODE;
    delete process.env.AIOS_PERSISTENT_DECODE;
    const l11 = runForced(graphs, path, opts);
    process.env.AIOS_PERSISTENT_DECODE = '1'; // read when the graph model is built
    let persistent: ReturnType<typeof runForced>;
    try {
      persistent = runForced(graphs, path, opts);
    } finally {
      if (before === undefined) delete process.env.AIOS_PERSISTENT_DECODE;
      else process.env.AIOS_PERSISTENT_DECODE = before;
    }
    described = l11.described;
    describedPersistent = persistent.described;
    rows = { l10: runForced(fused, path, opts).rows, l11: l11.rows, persistent: persistent.rows };
  }, 600_000);

  it('replays every decode step from a graph (lesson 10\'s kernels by default)', () => {
    console.log(described.join('\n'));
    expect(described.join('\n')).toMatch(/decode graphs captured at start-up/);
    expect(described.join('\n')).toMatch(/decode steps so far: [1-9]\d* replayed, 0 eager/);
    expect(described.join('\n')).toMatch(/no persistent decode kernel: off/);
  });

  it('agrees with lesson 10 within bf16 tolerance', () => {
    const c = compareRows(rows.l11, rows.l10);
    console.log(`lesson 11 vs 10 on CUDA bf16 (0.6B shape): rel. error ${c.relError.toExponential(2)}, argmax agreement ${c.argmaxAgreement.toFixed(3)}`);
    expect(c.relError).toBeLessThan(2e-2);
    expect(c.argmaxAgreement).toBeGreaterThanOrEqual(0.9);
  });

  it('with AIOS_PERSISTENT_DECODE=1: every decode step replays the persistent kernel, within bf16 tolerance of lesson 10', () => {
    console.log(describedPersistent.join('\n'));
    expect(describedPersistent.join('\n')).toMatch(/persistent decode kernel for batch buckets 1, 2, 4, 8 \(one launch for all 28 layers/);
    expect(describedPersistent.join('\n')).toMatch(/decode steps so far: ([1-9]\d*) replayed \(\1 of them through the persistent kernel\), 0 eager/);
    const c = compareRows(rows.persistent, rows.l10);
    console.log(`lesson 11 persistent vs 10 on CUDA bf16 (0.6B shape): rel. error ${c.relError.toExponential(2)}, argmax agreement ${c.argmaxAgreement.toFixed(3)}`);
    expect(c.relError).toBeLessThan(2e-2);
    expect(c.argmaxAgreement).toBeGreaterThanOrEqual(0.9);
  });
});
