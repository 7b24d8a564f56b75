// Rotary embedding tables: cos and sin of position * inv_freq for every
// position up to the model's context and every frequency, float32
// [maxPos, headDim/2]. Computed the way Hugging Face does, in float32
// (inv_freq = 1 / theta^(2i/d), then position * inv_freq), so our tables
// match the reference model's bit for bit in the angles that matter.
import type { Device } from '../backend.ts';
import { Tensor } from '../tensor.ts';

export interface RotaryTables {
  cos: Tensor;
  sin: Tensor;
  maxPositions: number;
}

export function rotaryTables(headDim: number, theta: number, maxPositions: number, device: Device): RotaryTables {
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim))));
  const cos = new Float32Array(maxPositions * half), sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++)
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]!);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  return {
    cos: Tensor.fromArray(cos, [maxPositions, half], { dtype: 'f32', device }),
    sin: Tensor.fromArray(sin, [maxPositions, half], { dtype: 'f32', device }),
    maxPositions,
  };
}
