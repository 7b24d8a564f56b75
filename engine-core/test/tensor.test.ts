import { describe, expect, it } from 'vitest';

import { Tensor, allocatorStats, cudaAvailable, ops, type Device } from '../src/index.ts';
import { randomArray } from './helpers.ts';

const devices: Device[] = cudaAvailable() ? ['cpu', 'cuda:0'] : ['cpu'];

describe.each(devices)('Tensor on %s', (device) => {
  it('round-trips every dtype through the device', () => {
    const f = Tensor.fromArray([1.5, -2.25, 3], [3], { dtype: 'f32', device });
    expect(Array.from(f.toArray() as Float32Array)).toEqual([1.5, -2.25, 3]);
    const b = Tensor.fromArray([1.5, -2.25, 3], [3], { dtype: 'bf16', device });
    expect(Array.from(b.toArray() as Float32Array)).toEqual([1.5, -2.25, 3]); // exactly representable
    const h = Tensor.fromArray([0.5, 65504, -1e-5], [3], { dtype: 'f16', device });
    const hb = h.toArray() as Float32Array;
    expect(hb[0]).toBe(0.5);
    expect(hb[1]).toBe(65504);
    expect(hb[2]).toBeCloseTo(-1e-5, 6); // a subnormal in f16
    const i = Tensor.fromArray([1, -2, 2147483647], [3], { dtype: 'i32', device });
    expect(Array.from(i.toArray() as Int32Array)).toEqual([1, -2, 2147483647]);
    const l = Tensor.fromArray(BigInt64Array.from([1n, -(2n ** 40n)]), [2], { dtype: 'i64', device });
    expect(Array.from(l.toArray() as BigInt64Array)).toEqual([1n, -(2n ** 40n)]);
    for (const t of [f, b, h, i, l]) t.dispose();
  });

  it('write holds what the array held when it was called, though queued behind other work and the array changed at once', () => {
    // copyFromHost takes no stream sync: the source is staged before it returns. Queue a long
    // op first so the copy lands behind it, overwrite the source at once, then read back.
    const big = Tensor.fromArray(randomArray(1 << 22, 5, 1), [1 << 22], { device });
    const data = Float32Array.from({ length: 1 << 16 }, (_, i) => i * 0.5);
    const want = Float32Array.from(data);
    const t = Tensor.empty([data.length], { dtype: 'f32', device });
    for (let round = 0; round < 4; round++) {
      const busy = ops.mul(big, big);
      t.write(data);
      data.fill(-1);
      expect(t.toArray() as Float32Array).toEqual(want);
      data.set(want);
      busy.dispose();
    }
    for (const x of [big, t]) x.dispose();
  });

  it('rounds to bf16 the way the hardware does (nearest even)', () => {
    // 1 + 2^-8 is halfway between two bf16 values: ties go to the even mantissa (1.0).
    // 1 + 3*2^-8 is halfway too: ties go up to 1 + 2^-6... (1 + 4*2^-8).
    const t = Tensor.fromArray([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -12], [3], { dtype: 'bf16', device });
    expect(Array.from(t.toArray() as Float32Array)).toEqual([1, 1 + 4 * 2 ** -8, 1 + 2 * 2 ** -8]);
    t.dispose();
  });

  it('makes views without copying and copies when asked', () => {
    const data = Float32Array.from({ length: 24 }, (_, i) => i);
    const t = Tensor.fromArray(data, [2, 3, 4], { device });
    const v = t.view(6, -1);
    expect(v.shape).toEqual([6, 4]);
    expect(v.storage).toBe(t.storage);
    const n = t.narrow(1, 1, 2); // [2, 2, 4], not contiguous
    expect(n.isContiguous()).toBe(false);
    expect(Array.from(n.toArray() as Float32Array)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23]);
    const s = t.select(0, 1);
    expect(s.shape).toEqual([3, 4]);
    expect(s.toNumbers()).toEqual(Array.from(data.subarray(12)));
    const tr = t.view(6, 4).transpose(0, 1).contiguous();
    expect(tr.shape).toEqual([4, 6]);
    expect(tr.toNumbers().slice(0, 6)).toEqual([0, 4, 8, 12, 16, 20]);
    expect(() => n.view(16)).toThrow(/not contiguous/);
    expect(() => t.view(5, 5)).toThrow(/25 elements/);
    expect(() => t.narrow(1, 2, 2)).toThrow(/outside dim 1/);
    tr.dispose();
    t.dispose();
  });

  it('disposes: the owner frees, views only retire, everything after is an error', () => {
    const t = Tensor.zeros([4], { device });
    const v = t.view(2, 2);
    v.dispose();
    expect(v.disposed).toBe(true);
    expect(t.disposed).toBe(false);
    expect(t.toNumbers()).toEqual([0, 0, 0, 0]);
    const w = t.view(4);
    t.dispose();
    t.dispose(); // idempotent
    expect(w.disposed).toBe(true);
    expect(() => t.toArray()).toThrow(/disposed/);
    expect(() => ops.add(w, w)).toThrow(/ops\.add: a .* was disposed/);
  });

  it('reuses freed memory: a steady-state loop makes no new raw allocations', () => {
    const x = Tensor.fromArray(randomArray(4096, 1), [64, 64], { dtype: 'bf16', device });
    const step = () => {
      const y = ops.silu(x);
      const z = ops.add(y, x);
      y.dispose();
      z.dispose();
    };
    step(); // warm the cache
    const before = allocatorStats(device);
    for (let i = 0; i < 100; i++) step();
    const after = allocatorStats(device);
    expect(after.rawAllocs - before.rawAllocs).toBe(0);
    expect(after.requests - before.requests).toBe(200);
    expect(after.cacheHits - before.cacheHits).toBe(200);
    expect(after.bytesInUse).toBe(before.bytesInUse);
    x.dispose();
  });

  it('reads back asynchronously', async () => {
    const t = Tensor.fromArray([3, 1, 2], [3], { dtype: 'bf16', device });
    expect(Array.from((await t.toArrayAsync()) as Float32Array)).toEqual([3, 1, 2]);
    t.dispose();
  });
});
