// Every op, as a case the CPU suite checks against a float64 reference written
// here in plain JS, and the GPU suite checks against the CPU backend. Inputs are
// drawn fresh from the seed each run; outputs are poisoned before the op runs.
import { Tensor, ops, type DType, type Device } from '../src/index.ts';
import { FLOAT_DTYPES, poisoned, randomArray, randomInts, roundTo } from './helpers.ts';

export interface Input {
  data: Float32Array | Int32Array;
  shape: number[];
  dtype: DType;
}

export interface OpCase {
  name: string;
  dtypes: readonly DType[];
  /** Inputs for a seed; float data is already rounded to the dtype. */
  inputs(seed: number, dtype: DType): Input[];
  /** Runs the op on a device into a poisoned output and returns it. */
  run(device: Device, t: Tensor[], dtype: DType): Tensor;
  /** float64 reference on the host. */
  reference(x: Float32Array[], dtype: DType): ArrayLike<number>;
  /** Compare exactly (index outputs). */
  exact?: boolean;
}

function floatInput(n: number, shape: number[], dtype: DType, seed: number, scale = 1): Input {
  return { data: roundTo(randomArray(n, seed, scale), dtype), shape, dtype };
}

const silu = (v: number) => v / (1 + Math.exp(-v));

// Sizes deliberately not multiples of 32/128, to catch tail handling.
const ROWS = 7, DIM = 300;

export const opCases: OpCase[] = [
  {
    name: 'add',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => [floatInput(1031, [1031], dt, s), floatInput(1031, [1031], dt, s + 1)],
    run: (dev, [a, b], dt) => ops.add(a!, b!, poisoned([1031], dt, dev)),
    reference: ([a, b]) => a!.map((v, i) => v + b![i]!),
  },
  {
    name: 'mul',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => [floatInput(1031, [1031], dt, s), floatInput(1031, [1031], dt, s + 1)],
    run: (dev, [a, b], dt) => ops.mul(a!, b!, poisoned([1031], dt, dev)),
    reference: ([a, b]) => a!.map((v, i) => v * b![i]!),
  },
  {
    name: 'silu',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => [floatInput(2053, [2053], dt, s, 6)],
    run: (dev, [x], dt) => ops.silu(x!, poisoned([2053], dt, dev)),
    reference: ([x]) => Array.from(x!, silu),
  },
  {
    name: 'rmsnorm',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => [floatInput(ROWS * DIM, [ROWS, DIM], dt, s, 3), floatInput(DIM, [DIM], dt, s + 1)],
    run: (dev, [x, w], dt) => ops.rmsnorm(x!, w!, 1e-6, poisoned([ROWS, DIM], dt, dev)),
    reference: ([x, w]) => {
      const out = new Float64Array(ROWS * DIM);
      for (let r = 0; r < ROWS; r++) {
        let ss = 0;
        for (let i = 0; i < DIM; i++) ss += x![r * DIM + i]! ** 2;
        const inv = 1 / Math.sqrt(ss / DIM + 1e-6);
        for (let i = 0; i < DIM; i++) out[r * DIM + i] = x![r * DIM + i]! * inv * w![i]!;
      }
      return out;
    },
  },
  {
    name: 'softmax',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => [floatInput(ROWS * 1500, [ROWS, 1500], dt, s, 8)],
    run: (dev, [x], dt) => ops.softmax(x!, poisoned([ROWS, 1500], dt, dev)),
    reference: ([x]) => {
      const n = 1500, out = new Float64Array(ROWS * n);
      for (let r = 0; r < ROWS; r++) {
        const row = x!.subarray(r * n, (r + 1) * n);
        const mx = Math.max(...row);
        let sum = 0;
        for (const v of row) sum += Math.exp(v - mx);
        for (let i = 0; i < n; i++) out[r * n + i] = Math.exp(row[i]! - mx) / sum;
      }
      return out;
    },
  },
  {
    name: 'matmul',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => [floatInput(19 * 160, [19, 160], dt, s), floatInput(77 * 160, [77, 160], dt, s + 1, 0.2)],
    run: (dev, [x, w], dt) => ops.matmul(x!, w!, poisoned([19, 77], dt, dev)),
    reference: ([x, w]) => {
      const out = new Float64Array(19 * 77);
      for (let m = 0; m < 19; m++)
        for (let n = 0; n < 77; n++) {
          let acc = 0;
          for (let k = 0; k < 160; k++) acc += x![m * 160 + k]! * w![n * 160 + k]!;
          out[m * 77 + n] = acc;
        }
      return out;
    },
  },
  {
    name: 'matmul (f32 out)',
    dtypes: ['bf16'],
    inputs: (s, dt) => [floatInput(5 * 96, [5, 96], dt, s), floatInput(33 * 96, [33, 96], dt, s + 1)],
    run: (dev, [x, w]) => ops.matmul(x!, w!, poisoned([5, 33], 'f32', dev), { outDtype: 'f32' }),
    reference: ([x, w]) => {
      const out = new Float64Array(5 * 33);
      for (let m = 0; m < 5; m++)
        for (let n = 0; n < 33; n++) {
          let acc = 0;
          for (let k = 0; k < 96; k++) acc += x![m * 96 + k]! * w![n * 96 + k]!;
          out[m * 33 + n] = acc;
        }
      return out;
    },
  },
  {
    name: 'rope',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => {
      const T = 9, H = 3, D = 64, P = 40;
      const pos = randomInts(T, P, s + 2);
      const cos = new Float32Array(P * (D / 2)), sin = new Float32Array(P * (D / 2));
      for (let p = 0; p < P; p++)
        for (let i = 0; i < D / 2; i++) {
          const angle = p / Math.pow(10000, (2 * i) / D);
          cos[p * (D / 2) + i] = Math.cos(angle);
          sin[p * (D / 2) + i] = Math.sin(angle);
        }
      return [
        floatInput(T * H * D, [T, H, D], dt, s),
        { data: pos, shape: [T], dtype: 'i32' },
        { data: cos, shape: [P, D / 2], dtype: 'f32' },
        { data: sin, shape: [P, D / 2], dtype: 'f32' },
      ];
    },
    run: (dev, [x, pos, cos, sin], dt) => ops.rope(x!, pos!, cos!, sin!, poisoned([9, 3, 64], dt, dev)),
    reference: ([x, pos, cos, sin]) => {
      const T = 9, H = 3, D = 64, half = 32, out = new Float64Array(T * H * D);
      for (let t = 0; t < T; t++)
        for (let h = 0; h < H; h++)
          for (let i = 0; i < half; i++) {
            const base = (t * H + h) * D, p = pos![t]!;
            const c = cos![p * half + i]!, s = sin![p * half + i]!;
            const x1 = x![base + i]!, x2 = x![base + i + half]!;
            out[base + i] = x1 * c - x2 * s;
            out[base + i + half] = x2 * c + x1 * s;
          }
      return out;
    },
  },
  {
    name: 'attention (causal, GQA)',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => {
      const Tq = 5, Tk = 37, Hq = 8, Hkv = 2, D = 64;
      return [
        floatInput(Tq * Hq * D, [Tq, Hq, D], dt, s),
        floatInput(Tk * Hkv * D, [Tk, Hkv, D], dt, s + 1),
        floatInput(Tk * Hkv * D, [Tk, Hkv, D], dt, s + 2),
      ];
    },
    run: (dev, [q, k, v], dt) => ops.attention(q!, k!, v!, poisoned([5, 8, 64], dt, dev)),
    reference: ([q, k, v]) => attentionReference(q!, k!, v!, 5, 37, 8, 2, 64, true),
  },
  {
    name: 'attention (prefill, full causal square)',
    dtypes: ['f32', 'bf16'],
    inputs: (s, dt) => {
      const T = 70, Hq = 4, Hkv = 4, D = 32;
      return [
        floatInput(T * Hq * D, [T, Hq, D], dt, s),
        floatInput(T * Hkv * D, [T, Hkv, D], dt, s + 1),
        floatInput(T * Hkv * D, [T, Hkv, D], dt, s + 2),
      ];
    },
    run: (dev, [q, k, v], dt) => ops.attention(q!, k!, v!, poisoned([70, 4, 32], dt, dev)),
    reference: ([q, k, v]) => attentionReference(q!, k!, v!, 70, 70, 4, 4, 32, true),
  },
  {
    name: 'attention (paged: keys through a slot table)',
    dtypes: ['f32', 'bf16'],
    inputs: (s, dt) => {
      const Tq = 3, Tk = 29, rows = 64, Hq = 4, Hkv = 2, D = 32;
      // A permutation prefix: each key has its own row, scattered over the pool.
      const perm = Array.from({ length: rows }, (_, i) => i);
      const r = randomInts(rows, 1 << 30, s + 3);
      perm.sort((a, b) => r[a]! - r[b]!);
      return [
        floatInput(Tq * Hq * D, [Tq, Hq, D], dt, s),
        floatInput(rows * Hkv * D, [rows, Hkv, D], dt, s + 1),
        floatInput(rows * Hkv * D, [rows, Hkv, D], dt, s + 2),
        { data: Int32Array.from(perm.slice(0, Tk)), shape: [Tk], dtype: 'i32' },
      ];
    },
    run: (dev, [q, k, v, slots], dt) => ops.attention(q!, k!, v!, poisoned([3, 4, 32], dt, dev), { kvSlots: slots! }),
    reference: ([q, k, v, slots]) => {
      // Gather the keys and values in slot order, then dense attention.
      const rowsOf = (x: Float32Array) => Float32Array.from(Array.from(slots!).flatMap((r) => Array.from(x.subarray(r * 64, r * 64 + 64))));
      return attentionReference(q!, rowsOf(k!), rowsOf(v!), 3, 29, 4, 2, 32, true);
    },
  },
  ...[
    { Hq: 8, Hkv: 2, D: 64, dtypes: FLOAT_DTYPES },
    { Hq: 16, Hkv: 8, D: 128, dtypes: ['bf16', 'f32'] as const },
    { Hq: 10, Hkv: 2, D: 32, dtypes: ['bf16'] as const },
  ].map(({ Hq, Hkv, D, dtypes }): OpCase => ({
    name: `pagedAttention (mixed step: decode, prefill, cached prefix; ${Hq}/${Hkv} heads, D ${D})`,
    dtypes,
    inputs: (s, dt) => {
      const step = pagedStep(s);
      const slots = step.numBlocks * PAGED_BLOCK;
      return [
        floatInput(step.tokens * Hq * D, [step.tokens, Hq, D], dt, s, 2),
        floatInput(slots * Hkv * D, [slots, Hkv, D], dt, s + 1, 2),
        floatInput(slots * Hkv * D, [slots, Hkv, D], dt, s + 2),
        { data: Int32Array.from(step.cu), shape: [step.cu.length], dtype: 'i32' },
        { data: Int32Array.from(step.ctx), shape: [step.ctx.length], dtype: 'i32' },
        { data: Int32Array.from(step.tables.flat()), shape: [step.ctx.length, PAGED_MAX_BLOCKS], dtype: 'i32' },
      ];
    },
    run: (dev, [q, k, v, cu, ctx, tables], dt) =>
      ops.pagedAttention(q!, k!, v!, { cuSeqlensQ: cu!, contextLens: ctx!, blockTables: tables!, blockSize: PAGED_BLOCK, maxQLen: 21, maxContextLen: 60 },
        poisoned([q!.shape[0]!, Hq, D], dt, dev)),
    reference: ([q, k, v, cu, ctx, tables]) => {
      const out = new Float64Array(q!.length);
      for (let b = 0; b + 1 < cu!.length; b++) {
        const qLen = cu![b + 1]! - cu![b]!, n = ctx![b]!;
        // Gather the sequence's keys and values in position order through its block table, then dense attention.
        const rowsOf = (x: Float32Array) => {
          const rows = new Float32Array(n * Hkv * D);
          for (let p = 0; p < n; p++) {
            const slot = tables![b * PAGED_MAX_BLOCKS + Math.floor(p / PAGED_BLOCK)]! * PAGED_BLOCK + (p % PAGED_BLOCK);
            rows.set(x.subarray(slot * Hkv * D, (slot + 1) * Hkv * D), p * Hkv * D);
          }
          return rows;
        };
        const qs = q!.subarray(cu![b]! * Hq * D, cu![b + 1]! * Hq * D);
        out.set(attentionReference(qs, rowsOf(k!), rowsOf(v!), qLen, n, Hq, Hkv, D, true), cu![b]! * Hq * D);
      }
      return out;
    },
  })),
  {
    name: 'argmax',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => [floatInput(ROWS * 5000, [ROWS, 5000], dt, s, 4)],
    run: (dev, [x]) => ops.argmax(x!, poisoned([ROWS], 'i32', dev)),
    reference: ([x]) => {
      const out: number[] = [];
      for (let r = 0; r < ROWS; r++) {
        let best = 0;
        for (let i = 1; i < 5000; i++) if (x![r * 5000 + i]! > x![r * 5000 + best]!) best = i;
        out.push(best);
      }
      return out;
    },
    exact: true,
  },
  {
    name: 'embedding',
    dtypes: FLOAT_DTYPES,
    inputs: (s, dt) => [floatInput(50 * 24, [50, 24], dt, s), { data: randomInts(13, 50, s + 1), shape: [13], dtype: 'i32' }],
    run: (dev, [table, ids], dt) => ops.embedding(table!, ids!, poisoned([13, 24], dt, dev)),
    reference: ([table, ids]) => Array.from(ids!).flatMap((id) => Array.from(table!.subarray(id * 24, id * 24 + 24))),
    exact: true,
  },
  {
    name: 'gatherRows',
    dtypes: ['bf16', 'f32', 'i32'],
    inputs: (s, dt) => [
      dt === 'i32' ? { data: randomInts(40 * 6, 1000, s), shape: [40, 6], dtype: dt } : floatInput(40 * 6, [40, 6], dt, s),
      { data: randomInts(17, 40, s + 1), shape: [17], dtype: 'i32' },
    ],
    run: (dev, [src, idx], dt) => ops.gatherRows(src!, idx!, poisoned([17, 6], dt, dev)),
    reference: ([src, idx]) => Array.from(idx!).flatMap((r) => Array.from(src!.subarray(r * 6, r * 6 + 6))),
    exact: true,
  },
  {
    name: 'scatterRows',
    dtypes: ['bf16', 'f32'],
    inputs: (s, dt) => {
      // Distinct destination rows (a permutation prefix), so the result does not depend on write order.
      const perm = Array.from({ length: 30 }, (_, i) => i);
      const r = randomInts(30, 1 << 30, s + 1);
      perm.sort((a, b) => r[a]! - r[b]!);
      return [floatInput(11 * 8, [11, 8], dt, s), { data: Int32Array.from(perm.slice(0, 11)), shape: [11], dtype: 'i32' }, floatInput(30 * 8, [30, 8], dt, s + 2)];
    },
    run: (dev, [src, idx, dst]) => ops.scatterRows(src!, idx!, dst!),
    reference: ([src, idx, dst]) => {
      const out = Float64Array.from(dst!);
      Array.from(idx!).forEach((r, i) => out.set(src!.subarray(i * 8, i * 8 + 8), r * 8));
      return out;
    },
    exact: true,
  },
  {
    name: 'concat (dim 1)',
    dtypes: ['bf16', 'f32'],
    inputs: (s, dt) => [floatInput(4 * 3 * 5, [4, 3, 5], dt, s), floatInput(4 * 2 * 5, [4, 2, 5], dt, s + 1)],
    run: (dev, [a, b], dt) => ops.concat([a!, b!], 1, poisoned([4, 5, 5], dt, dev)),
    reference: ([a, b]) => {
      const out: number[] = [];
      for (let i = 0; i < 4; i++) out.push(...a!.subarray(i * 15, i * 15 + 15), ...b!.subarray(i * 10, i * 10 + 10));
      return out;
    },
    exact: true,
  },
  {
    name: 'cast f32 -> X -> f32 (strided source)',
    dtypes: ['bf16', 'f16'],
    inputs: (s) => [floatInput(6 * 10, [6, 10], 'f32', s, 100)],
    run: (dev, [x], dt) => {
      const t = ops.cast(x!.transpose(0, 1), dt, poisoned([10, 6], dt, dev));
      return ops.cast(t, 'f32', poisoned([10, 6], 'f32', dev));
    },
    reference: ([x]) => {
      const out: number[] = [];
      for (let j = 0; j < 10; j++) for (let i = 0; i < 6; i++) out.push(x![i * 10 + j]!);
      return out;
    },
  },
];

const PAGED_BLOCK = 16, PAGED_MAX_BLOCKS = 4;

/**
 * One packed step of four sequences: a decode at context 37, a fresh 21-token
 * prefill, a 9-token prefill over a 41-token cached prefix (context 50, not a
 * multiple of the block), a decode at context 1; blocks drawn at random from a
 * pool of 20 (unused table entries -1).
 */
function pagedStep(seed: number): { tokens: number; cu: number[]; ctx: number[]; tables: number[][]; numBlocks: number } {
  const qLens = [1, 21, 9, 1], ctx = [37, 21, 50, 1], numBlocks = 20;
  const order = Array.from({ length: numBlocks }, (_, i) => i);
  const r = randomInts(numBlocks, 1 << 30, seed + 9);
  order.sort((a, b) => r[a]! - r[b]!);
  let next = 0;
  const tables = ctx.map((n) => Array.from({ length: PAGED_MAX_BLOCKS }, (_, i) => (i < Math.ceil(n / PAGED_BLOCK) ? order[next++]! : -1)));
  const cu = [0];
  for (const n of qLens) cu.push(cu[cu.length - 1]! + n);
  return { tokens: cu[cu.length - 1]!, cu, ctx, tables, numBlocks };
}

export function attentionReference(q: Float32Array, k: Float32Array, v: Float32Array, Tq: number, Tk: number, Hq: number,
  Hkv: number, D: number, causal: boolean): Float64Array {
  const out = new Float64Array(Tq * Hq * D);
  const g = Hq / Hkv, scale = 1 / Math.sqrt(D);
  for (let h = 0; h < Hq; h++)
    for (let i = 0; i < Tq; i++) {
      const last = causal ? Tk - Tq + i : Tk - 1, kvh = Math.floor(h / g);
      const s = new Float64Array(last + 1);
      for (let j = 0; j <= last; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(i * Hq + h) * D + d]! * k[(j * Hkv + kvh) * D + d]!;
        s[j] = dot * scale;
      }
      const mx = Math.max(...s);
      let sum = 0;
      for (let j = 0; j <= last; j++) sum += s[j] = Math.exp(s[j]! - mx);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = 0; j <= last; j++) acc += (s[j]! / sum) * v[(j * Hkv + kvh) * D + d]!;
        out[(i * Hq + h) * D + d] = acc;
      }
    }
  return out;
}

/** Uploads a case's inputs to a device. */
export function upload(inputs: Input[], device: Device): Tensor[] {
  return inputs.map((i) => Tensor.fromArray(i.data, i.shape, { dtype: i.dtype, device }));
}
