// ops.sampleRows: one draw per row by inverse CDF at the caller's uniform
// number, on every backend present. Checked against float64 on the host: the
// chosen index must be where the cumulative distribution crosses u (up to
// float32 rounding of the running sum), temperature 0 must be the argmax, and
// evenly spaced uniforms must reproduce the probabilities.
import { describe, expect, it } from 'vitest';

import { Tensor, cudaAvailable, ops, type Device } from '../src/index.ts';
import { randomArray, rng } from './helpers.ts';

const devices: Device[] = cudaAvailable() ? ['cpu', 'cuda:0'] : ['cpu'];
if (devices.length === 1) console.log('sample-rows.test: CUDA cases skipped: no usable CUDA device on this machine');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

function draw(device: Device, logits: Float32Array, rows: number, n: number, temps: number[], uniforms: number[]): number[] {
  const x = Tensor.fromArray(logits, [rows, n], { dtype: 'f32', device });
  const t = Tensor.fromArray(Float32Array.from(temps), [rows], { dtype: 'f32', device });
  const u = Tensor.fromArray(Float32Array.from(uniforms), [rows], { dtype: 'f32', device });
  const out = Tensor.full([rows], -7, { dtype: 'i32', device });
  try {
    ops.sampleRows(x, t, u, out);
    return Array.from(out.toArray() as Int32Array);
  } finally {
    for (const a of [x, t, u, out]) a.dispose();
  }
}

describe.each(devices)(`sampleRows on %s (seed ${seed})`, (device) => {
  it('picks where the float64 CDF crosses u, and the argmax at temperature 0', () => {
    const rows = 48, n = 70_001; // a vocabulary not a multiple of the 1024-thread chunking
    const logits = randomArray(rows * n, seed, 6);
    const r = rng(seed + 1);
    const temps = Array.from({ length: rows }, (_, i) => [0, 0.6, 1, 1.7][i % 4]!);
    const uniforms = Array.from({ length: rows }, () => r());
    const got = draw(device, logits, rows, n, temps, uniforms);
    for (let row = 0; row < rows; row++) {
      const x = logits.subarray(row * n, (row + 1) * n);
      let best = 0;
      for (let i = 1; i < n; i++) if (x[i]! > x[best]!) best = i;
      if (temps[row] === 0) {
        expect(got[row], `row ${row} greedy`).toBe(best);
        continue;
      }
      const w = Float64Array.from(x, (v) => Math.exp((v - x[best]!) / temps[row]!));
      const total = w.reduce((a, b) => a + b, 0);
      const p = got[row]!;
      expect(p >= 0 && p < n, `row ${row}: index ${p}`).toBe(true);
      let below = 0;
      for (let i = 0; i < p; i++) below += w[i]!;
      const target = uniforms[row]! * total, slack = 2e-5 * total;
      expect(below, `row ${row}: CDF before the pick`).toBeLessThanOrEqual(target + slack);
      expect(below + w[p]!, `row ${row}: CDF at the pick`).toBeGreaterThanOrEqual(target - slack);
    }
  });

  it('reproduces the distribution with evenly spaced uniforms', () => {
    const n = 9, draws = 4000;
    const row = Float32Array.from([0.3, -1, 2, 0.5, -3, 1.2, 0, 0.9, -0.4]);
    const temp = 0.8;
    const logits = new Float32Array(draws * n);
    for (let i = 0; i < draws; i++) logits.set(row, i * n);
    const uniforms = Array.from({ length: draws }, (_, i) => (i + 0.5) / draws);
    const got = draw(device, logits, draws, n, Array(draws).fill(temp), uniforms);
    const max = Math.max(...row);
    const w = Array.from(row, (v) => Math.exp((v - max) / temp));
    const total = w.reduce((a, b) => a + b, 0);
    const counts = Array(n).fill(0);
    for (const g of got) counts[g]++;
    // Uniforms at (i + 0.5) / draws cut the unit interval exactly: each count is its probability times draws, +-1.
    w.forEach((wi, i) => expect(Math.abs(counts[i] - (wi / total) * draws), `token ${i}`).toBeLessThanOrEqual(1));
  });

  it('a row with a NaN gives the argmax op\'s answer (NaN counts as the largest), greedy or sampled, never a stale id', () => {
    const n = 3000;
    const logits = randomArray(2 * n, seed + 5, 3);
    logits[17] = NaN;
    logits[n + 2345] = NaN;
    expect(draw(device, logits, 2, n, [0, 0.7], [0.5, 0.5])).toEqual([17, 2345]);
  });

  it('refuses logits that are not 2-d f32 and mismatched row counts', () => {
    const x = Tensor.zeros([2, 5], { dtype: 'bf16', device });
    const t = Tensor.zeros([2], { dtype: 'f32', device });
    expect(() => ops.sampleRows(x, t, t)).toThrow(/logits must be 2-d f32/);
    const y = Tensor.zeros([3, 5], { dtype: 'f32', device });
    expect(() => ops.sampleRows(y, t, t)).toThrow(/temperature has shape \[2\], expected \[3\]/);
  });
});
