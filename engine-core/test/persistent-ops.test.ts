// Lesson 11's persistent decode step through the ops facade on a machine without a GPU: the
// plan says why it cannot run here, and every malformed argument is an exception that names it,
// before anything reaches the kernel (which the CPU does not have: persistent-emu.test.ts runs
// its logic on the emulator, lessons/11-cuda-graphs/test/graphs.gpu.test.ts on the hardware).
import { describe, expect, it } from 'vitest';

import { type DType, Tensor, ops } from '../src/index.ts';
import type { PersistentDecodeArgs } from '../src/ops.ts';

// One layer of a small shape: hidden 256, 2 query heads and 1 KV head of 128, intermediate 256.
const L = 1, H = 256, Hq = 2, Hkv = 1, D = 128, I = 256, T = 1, SLOTS = 32, BS = 16;

function args(over: Partial<PersistentDecodeArgs> = {}, dt: DType = 'bf16'): PersistentDecodeArgs {
  const t = (shape: number[], dtype: DType = dt) => Tensor.zeros(shape, { dtype });
  return {
    weights: {
      qkv: t([L, (Hq + 2 * Hkv) * D, H]), o: t([L, H, Hq * D]), gateUp: t([L, 2 * I, H]), down: t([L, H, I]),
      inputNorm: t([L, H]), postNorm: t([L, H]), qNorm: t([L, D]), kNorm: t([L, D]), finalNorm: t([H]),
    },
    cos: t([64, D / 2], 'f32'), sin: t([64, D / 2], 'f32'), kvPool: t([L, 2, SLOTS, Hkv, D]), blockSize: BS,
    positions: t([T], 'i32'), slotMapping: t([T], 'i32'), contextLens: t([T], 'i32'), blockTables: t([T, 2], 'i32'),
    residual: t([T, H]), normedOut: t([T, H]), qkv: t([T, (Hq + 2 * Hkv) * D]), attn: t([T, Hq * D]), act: t([T, I]),
    partials: t([1024], 'f32'), sync: t([8], 'i32'), eps: 1e-6,
    ...over,
  };
}

describe('ops.persistentDecode on the CPU', () => {
  it('the plan says it is a CUDA kernel; well-formed arguments reach the binding, which says the same', () => {
    const plan = ops.persistentDecodePlan('cpu', { tokens: 1, layers: L, hidden: H, qHeads: Hq, kvHeads: Hkv, headDim: D, inter: I });
    expect(plan.why).toMatch(/CUDA kernel/);
    expect(() => ops.persistentDecode(args())).toThrow(/persistentDecode: is a CUDA kernel/);
  });

  it('names each malformed argument', () => {
    const a = args();
    expect(() => ops.persistentDecode(args({ weights: { ...a.weights, o: Tensor.zeros([L, H, 3 * D], { dtype: 'bf16' }) } }))).toThrow(/weights\.o has shape \[1, 256, 384\], expected \[1, 256, 256\]/);
    expect(() => ops.persistentDecode(args({ kvPool: Tensor.zeros([2, SLOTS, Hkv, D], { dtype: 'bf16' }) }))).toThrow(/kvPool must be \[layers, 2, slots, kvHeads, headDim\]/);
    expect(() => ops.persistentDecode(args({ positions: Tensor.zeros([T], { dtype: 'f32' }) }))).toThrow(/positions must be i32, got f32/);
    expect(() => ops.persistentDecode(args({ sync: Tensor.zeros([8], { dtype: 'f32' }) }))).toThrow(/sync must be i32, got f32/);
    expect(() => ops.persistentDecode(args({ blockSize: 5 }))).toThrow(/blockSize must divide the pool's 32 slots, got 5/);
    expect(() => ops.persistentDecode(args({ act: Tensor.zeros([T, 2 * I], { dtype: 'bf16' }) }))).toThrow(/act has shape \[1, 512\], expected \[1, 256\]/);
    expect(() => ops.persistentDecode(args({ residual: Tensor.zeros([T, H], { dtype: 'f32' }) }))).toThrow(/residual is f32 but weights\.qkv is bf16/);
    expect(() => ops.persistentDecode(args({ eps: -1 }))).toThrow(/eps must be a non-negative number/);
    expect(() => ops.persistentDecode(args({ weights: { ...a.weights, qkv: Tensor.zeros([L, 3 * D + 5, H], { dtype: 'bf16' }) } }))).toThrow(/weights\.qkv's 389 rows are not/);
  });

  it('the plan refuses out-of-range shapes before asking the device', () => {
    expect(() => ops.persistentDecodePlan('cpu', { tokens: -1, layers: L, hidden: H, qHeads: Hq, kvHeads: Hkv, headDim: D, inter: I })).toThrow(/tokens must be a non-negative integer, got -1/);
  });
});
