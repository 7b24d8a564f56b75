// Lesson 13's cascade decode on the CPU: ops.flashCascadeDecode on host tensors
// runs the CPU reference of the cascade (aios::cpu::cascade_decode: shared
// splits read once per group, the rest per sequence, partials combined), which
// must equal the plain paged decode (ops.flashDecode on the CPU, lesson 09's
// reference) and an independent float64 reference, on random shared-prefix
// steps. It also reports the keys it read, which the tests check against
// hand-counted numbers. The CUDA kernels are checked against this reference in
// cascade-decode.gpu.test.ts and on the emulator in flash-emu.test.ts.
import { describe, expect, it } from 'vitest';

import { Tensor, ops } from '../src/index.ts';
import { type CascadeCase, buildCascadeStep, cascadeName, randomCascadeCase } from './cascade-cases.ts';
import { FLASH_TOLERANCE, mismatch, reference64, upload } from './flash-cases.ts';
import { poisoned } from './helpers.ts';

const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

function run(c: CascadeCase, s: number): { cascade: Float32Array; plain: Float32Array; ref: Float64Array; keysRead: number; plainKeys: number; step: ReturnType<typeof buildCascadeStep> } {
  const step = buildCascadeStep(c, s);
  const t = upload(step, 'cpu');
  const a = poisoned([step.tokens, step.qHeads, c.headDim], c.dtype, 'cpu');
  const b = poisoned([step.tokens, step.qHeads, c.headDim], c.dtype, 'cpu');
  const stats = { keysRead: -1 };
  ops.flashCascadeDecode(t.q, t.k, t.v, t.meta, a, { stats });
  // the plain decode: lesson 09's decode on the CPU (its reference), lesson 07's op for head sizes lesson 09 has no kernel for
  if ([64, 128, 256].includes(c.headDim)) ops.flashDecode(t.q, t.k, t.v, t.meta, b, { version: 2 });
  else ops.pagedAttention(t.q, t.k, t.v, t.meta, b);
  const out = { cascade: a.toArray() as Float32Array, plain: b.toArray() as Float32Array, ref: reference64(step), keysRead: stats.keysRead, plainKeys: step.ctx.reduce((x, y) => x + y, 0), step };
  [a, b].forEach((x) => x.dispose());
  t.dispose();
  return out;
}

describe(`lesson 13 cascade decode, CPU reference (seed ${seed})`, () => {
  for (let i = 0; i < 8; i++) {
    const dtype = (['f32', 'bf16', 'f16'] as const)[i % 3]!;
    const c = randomCascadeCase(seed + 31 * i, { kvHeads: 1 + (i % 2), group: [1, 2, 4, 8][i % 4]!, headDim: [32, 64, 128][i % 3]!, blockSize: [16, 8, 32][i % 3]!, dtype, boost: i % 2 ? 4 : 1 });
    it(`random ${cascadeName(c)} equals the plain decode and float64`, () => {
      const r = run(c, seed + i);
      const tol = FLASH_TOLERANCE[dtype];
      const vsPlain = mismatch(r.step, r.cascade, r.plain);
      const vs64 = mismatch(r.step, r.cascade, r.ref);
      expect(vsPlain.nan, `NaN or unwritten; first at ${vsPlain.where}`).toBe(0);
      // f32: the same float32 arithmetic in another order; bf16/f16: both rounded once to the dtype
      expect(vsPlain.relError, `vs the plain decode: ${vsPlain.where}`).toBeLessThan(dtype === 'f32' ? 1e-5 : tol);
      expect(vs64.relError, `vs float64: ${vs64.where}`).toBeLessThan(tol);
      expect(r.keysRead).toBeGreaterThan(0);
      expect(r.keysRead).toBeLessThanOrEqual(r.plainKeys);
    });
  }

  it('reads a shared split once per group: hand-counted keys', () => {
    // Block size 16, so a 256-key split is 16 blocks.
    // Group A: 3 members sharing 32 blocks (512 keys), contexts 530, 600, 513: splits 0 and 1 read
    //   once (512 keys), then the members' own keys 18 + 88 + 1.
    // Group B: one sequence (context 90): no group, 90 keys.
    // Group C: 2 members sharing 18 blocks (288 keys), contexts 300 and 700: split 0 read once (256),
    //   split 1 diverges at key 288, so each reads its own: 44 + 444.
    const c: CascadeCase = {
      groups: [
        { sharedBlocks: 32, members: [[1, 530], [1, 600], [1, 513]] },
        { sharedBlocks: 0, members: [[1, 90]] },
        { sharedBlocks: 18, members: [[1, 300], [1, 700]] },
      ],
      kvHeads: 2, group: 2, headDim: 64, blockSize: 16, dtype: 'f32',
    };
    const r = run(c, seed);
    expect(r.plainKeys).toBe(2733);
    expect(r.keysRead).toBe(512 + 18 + 88 + 1 + 90 + 256 + 44 + 444);
    expect(mismatch(r.step, r.cascade, r.plain).relError).toBeLessThan(1e-5);
  });

  it('without shared blocks reads what the plain decode reads', () => {
    const c: CascadeCase = { groups: [300, 1, 257, 512].map((n) => ({ sharedBlocks: 0, members: [[1, n]] as const })), kvHeads: 1, group: 4, headDim: 64, blockSize: 16, dtype: 'bf16' };
    const r = run(c, seed + 1);
    expect(r.keysRead).toBe(r.plainKeys);
    expect(mismatch(r.step, r.cascade, r.plain).relError).toBeLessThan(FLASH_TOLERANCE.bf16);
  });

  it('a member with no query and a member stopping inside the prefix are left to themselves', () => {
    // 4 members share 16 blocks (256 keys); member 1 has no query, member 2's context (200) ends inside
    // the prefix: the shared split 0 is read once for members 0 and 3 (256), member 2 reads its 200,
    // member 0 its 44, member 3 its 1; member 1 reads nothing.
    const c: CascadeCase = { groups: [{ sharedBlocks: 16, members: [[1, 300], [0, 280], [1, 200], [1, 257]] }], kvHeads: 1, group: 2, headDim: 32, blockSize: 16, dtype: 'f32' };
    const r = run(c, seed + 2);
    expect(r.keysRead).toBe(256 + 44 + 200 + 1);
    expect(mismatch(r.step, r.cascade, r.plain).relError).toBeLessThan(1e-5);
  });
});

describe('lesson 13 flashCascadeDecode names what is wrong', () => {
  const c: CascadeCase = { groups: [{ sharedBlocks: 2, members: [[1, 40], [1, 50]] }], kvHeads: 1, group: 2, headDim: 64, blockSize: 16, dtype: 'f32' };
  const s = buildCascadeStep(c, 1);
  const t = upload(s, 'cpu');
  it('a step that is not a decode step', () => {
    expect(() => ops.flashCascadeDecode(t.q, t.k, t.v, { ...t.meta, maxQLen: 3 })).toThrow(/flashCascadeDecode: a decode step has maxQLen 0 or 1, got 3/);
  });
  it('a sequence with two queries', () => {
    const cu = Tensor.fromArray(new Int32Array([0, 2, 2]), [3], { dtype: 'i32', device: 'cpu' });
    const q2 = Tensor.fromArray(new Float32Array(2 * 2 * 64), [2, 2, 64], { dtype: 'f32', device: 'cpu' });
    expect(() => ops.flashCascadeDecode(q2, t.k, t.v, { ...t.meta, cuSeqlensQ: cu, maxQLen: 1 })).toThrow(/has 2 queries, more than max_q_len 1/);
    cu.dispose();
    q2.dispose();
  });
  it('a workspace that is not f32, a bad plan shape', () => {
    const ws = Tensor.empty([16], { dtype: 'i32', device: 'cpu' });
    expect(() => ops.flashCascadeDecode(t.q, t.k, t.v, t.meta, undefined, { workspace: ws })).toThrow(/workspace must be f32, got i32/);
    ws.dispose();
    expect(() => ops.flashCascadePlan({ device: 'cpu', numSeqs: 2, numTokens: -1, qHeads: 2, kvHeads: 1, headDim: 64, maxContextLen: 50 })).toThrow(/numTokens must be a non-negative integer/);
  });
  it('the plan: 256-key shared splits over the longest context; the CPU needs no workspace', () => {
    const p = ops.flashCascadePlan({ device: 'cpu', numSeqs: 256, numTokens: 256, qHeads: 16, kvHeads: 8, headDim: 128, maxContextLen: 1300 });
    expect(p.sharedSplits).toBe(6);
    expect(p.workspaceBytes).toBe(0);
  });
});
