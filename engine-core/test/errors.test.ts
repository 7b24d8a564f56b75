// Bad input is an exception that names the problem, never a crash. The second
// half calls the raw binding directly, as a buggy caller would, to check that
// the addon's own bounds checks hold without the TypeScript layer.
import { describe, expect, it } from 'vitest';

import { Tensor, native, ops, parseDevice } from '../src/index.ts';

describe('errors through the ops facade', () => {
  const a = Tensor.zeros([4, 8]);
  const b = Tensor.zeros([4, 8], { dtype: 'bf16' });
  const ids = Tensor.fromArray([1, 2], [2], { dtype: 'i32' });

  it('names the op, the argument and the problem', () => {
    expect(() => ops.add(a, b)).toThrow('ops.add: b is bf16 but a is f32');
    expect(() => ops.add(a, Tensor.zeros([8, 4]))).toThrow('ops.add: b has shape [8, 4], expected [4, 8]');
    expect(() => ops.matmul(a, Tensor.zeros([3, 5]))).toThrow(/inner size 8 .* K = 5/);
    expect(() => ops.silu(ids)).toThrow('ops.silu: x must be bf16, f16 or f32, got i32');
    expect(() => ops.embedding(a, a)).toThrow('ops.embedding: ids must be i32 or i64, got f32');
    expect(() => ops.rmsnorm(a, Tensor.zeros([7]), 1e-6)).toThrow(/weight has shape \[7\], expected \[8\]/);
    expect(() => ops.silu(a.transpose(0, 1))).toThrow(/must be contiguous/);
    expect(() => ops.attention(Tensor.zeros([2, 3, 8]), Tensor.zeros([2, 2, 8]), Tensor.zeros([2, 2, 8]))).toThrow(/multiple of kv heads/);
    expect(() => ops.add(a, a, Tensor.zeros([4, 8], { dtype: 'bf16' }))).toThrow('ops.add: out is bf16, expected f32');
    expect(() => ops.add(a, 3 as unknown as Tensor)).toThrow('ops.add: b must be a Tensor, got number');
  });

  it('rejects values the CPU kernels cannot take (the device cannot throw: see ops.embedding)', () => {
    const cpu = { device: 'cpu' } as const;
    const table = Tensor.zeros([10, 4], cpu);
    expect(() => ops.embedding(table, Tensor.fromArray([3, 10], [2], { dtype: 'i32', ...cpu }))).toThrow(/token id 10 .* outside the vocabulary \[0, 10\)/);
    expect(() => ops.gatherRows(table, Tensor.fromArray([-1], [1], { dtype: 'i32', ...cpu }))).toThrow(/index -1/);
    const cos = Tensor.zeros([4, 4], cpu);
    expect(() => ops.rope(Tensor.zeros([1, 1, 8], cpu), Tensor.fromArray([4], [1], { dtype: 'i32', ...cpu }), cos, cos)).toThrow(/position 4 .* outside the table/);
  });

  it('checks shapes and dtypes at creation', () => {
    expect(() => Tensor.empty([2, -1])).toThrow(/invalid size -1/);
    expect(() => Tensor.empty([2], { dtype: 'f64' as never })).toThrow(/unknown dtype "f64"/);
    expect(() => Tensor.fromArray([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
  });

  it('explains an unusable device', () => {
    expect(() => parseDevice('tpu')).toThrow(/unknown device "tpu"/);
    if (!native.backendInfo().cudaUsable) expect(() => parseDevice('cuda')).toThrow(/CUDA is not usable: /);
  });
});

describe('errors from the raw binding (no TypeScript checks in the way)', () => {
  it('rejects out-of-bounds byte ranges', () => {
    const s = new native.Storage(64, -1);
    expect(() => native.silu(2, 32, s, 0, s, 0)).toThrow(/silu: x needs bytes \[0, 128\) but its storage holds 64/);
    expect(() => native.add(2, 4, s, 60, s, 0, s, 0)).toThrow(/add: a needs bytes \[60, 76\)/);
    expect(() => native.matmulNT(2, 2, 4, 4, 4, s, 0, s, 0, s, 0)).not.toThrow();
    expect(() => native.matmulNT(2, 2, 4, 5, 4, s, 0, s, 0, s, 0)).toThrow(/matmul: w needs bytes \[0, 80\)/);
    s.dispose();
  });

  it('rejects disposed storage, wrong objects, bad dtype codes and negative sizes', () => {
    const s = new native.Storage(64, -1);
    const t = new native.Storage(64, -1);
    t.dispose();
    expect(() => native.silu(2, 4, s, 0, t, 0)).toThrow(/silu: out was disposed/);
    expect(() => native.silu(2, 4, s, 0, {} as never, 0)).toThrow(/silu: out is not a Storage/);
    expect(() => native.silu(9, 4, s, 0, s, 0)).toThrow(/unknown dtype code 9/);
    expect(() => native.silu(3, 4, s, 0, s, 0)).toThrow(/must be bf16, f16 or f32, got i32/);
    expect(() => native.silu(2, -4, s, 0, s, 0)).toThrow(/non-negative integer/);
    expect(() => (native.silu as (...args: unknown[]) => void)(2, 4, s, 0)).toThrow(/missing argument/);
    expect(() => new native.Storage(-5, -1)).toThrow(/non-negative integer/);
    expect(() => s.copyFromHost(new Float32Array(17), 0)).toThrow(/exceed the storage's 64 bytes/);
    s.dispose();
  });

  it('rejects a paged attention slot outside the pool (CPU)', () => {
    const cpu = { device: 'cpu' } as const;
    const q = Tensor.zeros([1, 2, 8], cpu), pool = Tensor.zeros([4, 2, 8], cpu);
    expect(() => ops.attention(q, pool, pool, undefined, { kvSlots: Tensor.fromArray([0, 4], [2], { dtype: 'i32', ...cpu }) })).toThrow(
      /kv slot 4 of key 1 is outside the pool's 4 rows/,
    );
    // The binding refuses an empty pool with slots before any backend reads it (CUDA could not throw from the kernel).
    const empty = Tensor.zeros([0, 2, 8], cpu);
    expect(() => ops.attention(q, empty, empty, undefined, { kvSlots: Tensor.fromArray([0], [1], { dtype: 'i32', ...cpu }) })).toThrow(
      /kvSlots given for an empty pool \(kvRows 0\)/,
    );
  });

  it('reports an impossible allocation as an exception', () => {
    expect(() => new native.Storage(2 ** 52, -1)).toThrow(/out of memory/);
  });
});

describe('pagedAttention metadata that does not describe a step is an exception, not a wrong answer', () => {
  const D = 32, Hq = 4, Hkv = 2, bs = 4;
  const q = Tensor.zeros([3, Hq, D], { dtype: 'f32', device: 'cpu' });
  const pool = Tensor.zeros([8 * bs, Hkv, D], { dtype: 'f32', device: 'cpu' });
  const i32 = (v: number[], shape: number[]) => Tensor.fromArray(Int32Array.from(v), shape, { dtype: 'i32', device: 'cpu' });
  const meta = (cu: number[], ctx: number[], tables: number[]) => ({
    cuSeqlensQ: i32(cu, [cu.length]), contextLens: i32(ctx, [ctx.length]), blockTables: i32(tables, [ctx.length, 2]), blockSize: bs, maxQLen: 2, maxContextLen: 8,
  });
  it('checks shapes, offsets, contexts and block ids', () => {
    expect(() => ops.pagedAttention(q, pool, pool, meta([0, 1, 3], [5, 6], [0, 1, 2, 3]))).not.toThrow();
    expect(() => ops.pagedAttention(q, pool, pool, meta([0, 1, 2], [5, 6], [0, 1, 2, 3]))).toThrow(/cu_seqlens_q ends at 2 but there are 3 query tokens/);
    expect(() => ops.pagedAttention(q, pool, pool, meta([0, 1, 3], [5, 1], [0, 1, 2, 3]))).toThrow(/sequence 1 has context length 1, outside \[2 queries/);
    expect(() => ops.pagedAttention(q, pool, pool, meta([0, 1, 3], [5, 6], [0, 9, 2, 3]))).toThrow(/block table entry 1 of sequence 0 is 9, outside the pool's 8 blocks/);
    expect(() => ops.pagedAttention(q, pool, pool, { ...meta([0, 1, 3], [5, 6], [0, 1, 2, 3]), blockSize: 3 })).toThrow(/not a whole number of 3-slot blocks/);
    expect(() => ops.pagedAttention(q, pool.narrow(2, 0, 16), pool, meta([0, 1, 3], [5, 6], [0, 1, 2, 3]))).toThrow(/kCache/);
  });
});
