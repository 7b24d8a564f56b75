// Shared test tools: seeded random data, float64 references, relative error.
import { Tensor, type DType, type Device, cudaAvailable } from '../src/index.ts';
import { mulberry32 } from '../src/random.ts';

export const rng = mulberry32;

/** Uniform values in [-scale, scale). A fresh seed per test: the fast path must be right on any input. */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

export function randomInts(n: number, max: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * max));
}

/** The values a dtype would store (bf16/f16 rounding), so references start from the same inputs. */
export function roundTo(values: Float32Array, dtype: DType, device: Device = 'cpu'): Float32Array {
  if (dtype === 'f32') return values;
  const t = Tensor.fromArray(values, [values.length], { dtype, device });
  const back = t.toArray() as Float32Array;
  t.dispose();
  return back;
}

/** ||out - ref|| / ||ref||; NaN anywhere gives Infinity so it never passes. */
export function relError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new Error(`length ${out.length} vs ${ref.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const o = out[i]!, r = ref[i]!;
    if (Number.isNaN(o) || Number.isNaN(r)) return Infinity;
    num += (o - r) ** 2;
    den += r * r;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Error bounds per dtype (METHOD.md: f32 far under 1e-3; bf16 operands between 1e-3 and 1e-2). */
export const TOLERANCE: Record<'bf16' | 'f16' | 'f32', number> = { f32: 1e-5, f16: 2e-3, bf16: 1e-2 };

export const FLOAT_DTYPES = ['f32', 'bf16', 'f16'] as const;

/** The devices a suite runs on: always the CPU; CUDA where usable. */
export function gpuNote(): string {
  return cudaAvailable() ? '' : ' (skipped: no usable CUDA device on this machine)';
}

/** A tensor filled with NaN (floats) or a sentinel (ints), so an unwritten output is caught. */
export function poisoned(shape: number[], dtype: DType, device: Device): Tensor {
  return Tensor.full(shape, dtype === 'i32' || dtype === 'i64' ? -7777 : NaN, { dtype, device });
}
