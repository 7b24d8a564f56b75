// Lesson 09 on the CPU: flashPrefill and flashDecode on host tensors run the
// CPU reference (aios::cpu::paged_attention), which is what every CUDA version
// is checked against in flash-attention.gpu.test.ts; here that reference is
// checked against an independent float64 implementation (flash-cases.ts) on
// fresh random steps, and the ops' argument checks are exercised.
import { describe, expect, it } from 'vitest';

import { Tensor, ops } from '../src/index.ts';
import { CPU_CASES, FLASH_TOLERANCE, buildStep, caseName, mismatch, reference64, upload } from './flash-cases.ts';
import { poisoned } from './helpers.ts';

const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

describe(`lesson 09 CPU reference vs float64 (seed ${seed})`, () => {
  CPU_CASES.forEach((c, n) => {
    for (const kind of ['prefill', 'decode'] as const) {
      const decodeRows = Math.max(...c.seqs.map(([q]) => q)) * c.group;
      if (kind === 'decode' && decodeRows > 8) continue;  // the decode kernels' row limit (v1, v2)
      it(`${kind} ${c.dtype} ${caseName(c)}`, () => {
        const s = buildStep(c, seed + 97 * n);
        const t = upload(s, 'cpu');
        const out = poisoned([s.tokens, s.qHeads, c.headDim], c.dtype, 'cpu');
        // version 1 runs every dtype and head size; on the CPU every version is the reference
        if (kind === 'prefill') ops.flashPrefill(t.q, t.k, t.v, t.meta, out, { version: 1 });
        else ops.flashDecode(t.q, t.k, t.v, t.meta, out, { version: 1 });
        const m = mismatch(s, out.toArray() as Float32Array, reference64(s));
        const tol = FLASH_TOLERANCE[c.dtype as 'bf16' | 'f16' | 'f32'];
        expect(m.nan, `unwritten or NaN elements; first at ${m.where}`).toBe(0);
        expect(m.relError, `relative error ${m.relError.toExponential(2)} over ${tol}; worst at ${m.where}`).toBeLessThan(tol);
        t.dispose();
        out.dispose();
      });
    }
  });
});

describe('lesson 09 ops name what is wrong', () => {
  const c = CPU_CASES[0]!;
  const s = buildStep(c, 1);
  const t = upload(s, 'cpu');
  it('a version that does not exist', () => {
    expect(() => ops.flashPrefill(t.q, t.k, t.v, t.meta, undefined, { version: 6 })).toThrow(/flashPrefill: version must be one of 1, 2, 3, 4, 5, got 6/);
    expect(() => ops.flashDecode(t.q, t.k, t.v, t.meta, undefined, { version: 0 })).toThrow(/flashDecode: version must be one of 1, 2, 3, got 0/);
  });
  it('a version that cannot run the step', () => {
    const f32 = upload(buildStep({ ...c, dtype: 'f32' }, 2), 'cpu');
    expect(() => ops.flashPrefill(f32.q, f32.k, f32.v, f32.meta, undefined, { version: 2 })).toThrow(/prefill v2 \(tensor cores\) needs bf16 or f16, got f32/);
    expect(() => ops.flashPrefill(f32.q, f32.k, f32.v, f32.meta, undefined, { version: 5 })).toThrow(/prefill v5 \(tensor cores\) needs bf16 or f16, got f32/);
    expect(() => ops.flashDecode(f32.q, f32.k, f32.v, f32.meta, undefined, { version: 3 })).toThrow(/decode v3 \(tensor cores\) needs bf16 or f16/);
    f32.dispose();
    // decode holds maxQLen x group rows per KV head: 70 x 2 is far past 8
    expect(() => ops.flashDecode(t.q, t.k, t.v, t.meta, undefined, { version: 2 })).toThrow(/decode v2 holds 8 query rows per KV head, but max_q_len 70 x 2/);
    const d96 = upload(buildStep({ ...c, headDim: 96 }, 3), 'cpu');
    expect(() => ops.flashPrefill(d96.q, d96.k, d96.v, d96.meta, undefined, { version: 1 })).toThrow(/prefill v1 needs head_dim 64, 128 or 256, got 96/);
    d96.dispose();
  });
  it('a scale that is not positive, a misaligned tensor, bad splits', () => {
    expect(() => ops.flashPrefill(t.q, t.k, t.v, t.meta, undefined, { scale: 0 })).toThrow(/flashPrefill: scale must be positive/);
    const D = c.headDim;
    const big = Tensor.fromArray(new Float32Array((s.tokens * s.qHeads + 1) * D + 4), undefined, { dtype: c.dtype, device: 'cpu' });
    const shifted = big.narrow(0, 4, s.tokens * s.qHeads * D).view([s.tokens, s.qHeads, D]);  // 8 bytes in
    expect(() => ops.flashPrefill(shifted, t.k, t.v, t.meta)).toThrow(/flashPrefill: q must start at a 16-byte aligned address/);
    big.dispose();
    expect(() => ops.flashDecode(t.q, t.k, t.v, t.meta, undefined, { splits: -1 })).toThrow(/flashDecode: splits must be a non-negative integer/);
  });
  it('metadata the reference rejects', () => {
    const bad = Tensor.fromArray(Int32Array.from(s.ctx.map((n) => n + 1000)), [s.ctx.length], { dtype: 'i32', device: 'cpu' });
    expect(() => ops.flashPrefill(t.q, t.k, t.v, { ...t.meta, contextLens: bad })).toThrow(/maxContextLen .* does not fit|context length/);
    bad.dispose();
  });
  it('flashDecodePlan: one split and no workspace on the CPU', () => {
    const plan = ops.flashDecodePlan({ device: 'cpu', numSeqs: 3, numTokens: 3, qHeads: 16, kvHeads: 8, headDim: 128, maxQLen: 1, maxContextLen: 5000 });
    expect(plan.splits).toBe(1);
    expect(plan.workspaceBytes).toBe(0);
  });
});
