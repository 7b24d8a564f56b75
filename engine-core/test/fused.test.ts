// Lesson 10's fused kernels against the unfused ops they replace, on every
// backend present: on the CPU they round where the unfused ops round, so the
// results are identical; CUDA is checked against the CPU within bf16 tolerance
// (and should be identical to its own unfused kernels).
import { describe, expect, it } from 'vitest';

import { Tensor, cudaAvailable, ops, type Device } from '../src/index.ts';
import { TOLERANCE, randomArray, randomInts, relError } from './helpers.ts';

const devices: Device[] = cudaAvailable() ? ['cpu', 'cuda:0'] : ['cpu'];
if (devices.length === 1) console.log('fused.test: CUDA cases skipped: no usable CUDA device on this machine');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

const bf = (a: Float32Array, shape: number[], device: Device) => Tensor.fromArray(a, shape, { dtype: 'bf16', device });
const arr = (t: Tensor) => Array.from(t.toArray() as Float32Array);

/** Runs `f` on the CPU and on `device`; on the CPU the fused and unfused results must be identical. */
function check(device: Device, f: (d: Device) => { fused: Tensor[]; unfused: Tensor[] }): void {
  const cpu = f('cpu');
  cpu.fused.forEach((t, i) => expect(arr(t), `output ${i}: fused = unfused on the CPU`).toEqual(arr(cpu.unfused[i]!)));
  if (device === 'cpu') return;
  const gpu = f(device);
  gpu.fused.forEach((t, i) => {
    const got = arr(t);
    expect(got.every((v) => !Number.isNaN(v)), `output ${i}: every element written`).toBe(true);
    expect(relError(got, arr(cpu.fused[i]!)), `output ${i}: CUDA vs CPU`).toBeLessThan(TOLERANCE.bf16);
    expect(relError(got, arr(gpu.unfused[i]!)), `output ${i}: CUDA fused vs CUDA unfused`).toBeLessThan(TOLERANCE.bf16);
  });
}

describe.each(devices)(`fused kernels on %s (seed ${seed})`, (device) => {
  it('addRmsnorm = add then rmsnorm, the sum left in the residual', () => {
    const rows = 7, dim = 1024;
    const x = randomArray(rows * dim, seed, 2), r = randomArray(rows * dim, seed + 1, 2), w = randomArray(dim, seed + 2);
    check(device, (d) => {
      const residual = bf(r, [rows, dim], d);
      const out = ops.addRmsnorm(bf(x, [rows, dim], d), residual, bf(w, [dim], d), 1e-6);
      const h = ops.add(bf(x, [rows, dim], d), bf(r, [rows, dim], d));
      return { fused: [residual, out], unfused: [h, ops.rmsnorm(h, bf(w, [dim], d), 1e-6)] };
    });
  });

  it('siluMul on the fused gate/up output = silu(gate) * up', () => {
    const rows = 5, inter = 3072;
    const gu = randomArray(rows * 2 * inter, seed + 3, 4);
    check(device, (d) => {
      const t = bf(gu, [rows, 2 * inter], d);
      const gate = t.narrow(1, 0, inter).contiguous(), up = t.narrow(1, inter, inter).contiguous();
      return { fused: [ops.siluMul(t)], unfused: [ops.mul(ops.silu(gate), up)] };
    });
  });

  it('qkNormRopeStore = q/k RMSNorm, RoPE and the K/V scatter, padding rows untouched', () => {
    const T = 6, Hq = 16, Hkv = 8, D = 128, slots = 40, maxPos = 600;
    const qkv = randomArray(T * (Hq + 2 * Hkv) * D, seed + 4, 3);
    const qn = randomArray(D, seed + 5), kn = randomArray(D, seed + 6);
    const pos = Array.from(randomInts(T, maxPos, seed + 7));
    // Distinct slots, one padding row (-1) that must store nothing.
    const perm = Array.from({ length: slots }, (_, i) => i).sort((a, b) => Math.sin(a * 12.9898 + seed) - Math.sin(b * 12.9898 + seed));
    const slotList = perm.slice(0, T);
    slotList[3] = -1;
    const cos = new Float32Array(maxPos * (D / 2)), sin = new Float32Array(maxPos * (D / 2));
    for (let p = 0; p < maxPos; p++)
      for (let i = 0; i < D / 2; i++) {
        const angle = p / Math.pow(1_000_000, (2 * i) / D);
        cos[p * (D / 2) + i] = Math.cos(angle);
        sin[p * (D / 2) + i] = Math.sin(angle);
      }
    const poison = randomArray(slots * Hkv * D, seed + 8);
    check(device, (d) => {
      const i32 = (a: number[]) => Tensor.fromArray(Int32Array.from(a), [a.length], { dtype: 'i32', device: d });
      const f32 = (a: Float32Array) => Tensor.fromArray(a, [maxPos, D / 2], { dtype: 'f32', device: d });
      const kCache = bf(poison, [slots, Hkv, D], d), vCache = bf(poison, [slots, Hkv, D], d);
      const args = { qkv: bf(qkv, [T, (Hq + 2 * Hkv) * D], d), qNorm: bf(qn, [D], d), kNorm: bf(kn, [D], d), eps: 1e-6, positions: i32(pos), cos: f32(cos), sin: f32(sin), slotMapping: i32(slotList), kCache, vCache, qHeads: Hq };
      const q = ops.qkNormRopeStore(args);
      // The unfused path: split, norm, rotate, scatter (the padding row left out of the scatter).
      const all = bf(qkv, [T, Hq + 2 * Hkv, D], d);
      const part = (from: number, n: number) => all.narrow(1, from, n).contiguous();
      const q2 = ops.rope(ops.rmsnorm(part(0, Hq), bf(qn, [D], d), 1e-6), i32(pos), f32(cos), f32(sin));
      const k2 = ops.rope(ops.rmsnorm(part(Hq, Hkv), bf(kn, [D], d), 1e-6), i32(pos), f32(cos), f32(sin));
      const v2 = part(Hq + Hkv, Hkv);
      const kRef = bf(poison, [slots, Hkv, D], d), vRef = bf(poison, [slots, Hkv, D], d);
      const live = slotList.map((s, t) => [s, t] as const).filter(([s]) => s >= 0);
      const rows = i32(live.map(([, t]) => t)), dst = i32(live.map(([s]) => s));
      ops.scatterRows(ops.gatherRows(k2, rows), dst, kRef);
      ops.scatterRows(ops.gatherRows(v2, rows), dst, vRef);
      return { fused: [q, kCache, vCache], unfused: [q2, kRef, vRef] };
    });
  });

  it('names what is wrong', () => {
    const x = Tensor.zeros([2, 8], { dtype: 'bf16', device });
    expect(() => ops.addRmsnorm(x, Tensor.zeros([2, 4], { dtype: 'bf16', device }), Tensor.zeros([8], { dtype: 'bf16', device }), 1e-6)).toThrow(/residual has shape \[2, 4\], expected \[2, 8\]/);
    expect(() => ops.siluMul(Tensor.zeros([2, 7], { dtype: 'bf16', device }))).toThrow(/last dimension must be even/);
  });
});
