// Lesson 09's test steps: packed paged-attention steps drawn fresh from a seed
// (ragged lengths, lengths off the 32/64-key tiles and off the block size,
// cached prefixes, decode steps, GQA groups 1..8, block tables handed out in a
// random order from a pool with spare blocks), and an independent float64
// reference that reads the pool slot by slot. Shared by the CPU suite
// (flash-attention.test.ts: the CPU reference vs float64) and the GPU suite
// (flash-attention.gpu.test.ts: every CUDA version vs the CPU reference).
import { Tensor, type DType, type Device, type ops } from '../src/index.ts';
import { randomArray, rng, roundTo } from './helpers.ts';

export interface FlashCase {
  /** [queries, context] per sequence: the queries are the last ones of the context. */
  seqs: readonly (readonly [number, number])[];
  kvHeads: number;
  /** Query heads per KV head. */
  group: number;
  headDim: number;
  blockSize: number;
  dtype: DType;
  /** Multiplies q: larger logits, a peakier softmax (the online max has to move). */
  boost?: number;
}

export interface FlashStep {
  c: FlashCase;
  tokens: number;
  qHeads: number;
  numSlots: number;
  maxBlocks: number;
  maxQLen: number;
  maxContextLen: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  cu: Int32Array;
  ctx: Int32Array;
  tables: Int32Array;
}

export function caseName(c: FlashCase): string {
  const seqs = c.seqs.length > 6 ? `${c.seqs.slice(0, 4).map(([q, n]) => `${q}/${n}`).join(' ')} ... ${c.seqs.length} seqs` : c.seqs.map(([q, n]) => `${q}/${n}`).join(' ');
  return `[${seqs}] heads ${c.kvHeads * c.group}/${c.kvHeads} D${c.headDim} bs${c.blockSize}${c.boost ? ` x${c.boost}` : ''}`;
}

/** A step of case `c` with values drawn from `seed` (already rounded to the dtype). */
export function buildStep(c: FlashCase, seed: number): FlashStep {
  const { kvHeads, group, headDim: D, blockSize: bs } = c;
  const qHeads = kvHeads * group;
  const cu = new Int32Array(c.seqs.length + 1);
  c.seqs.forEach(([qLen], b) => (cu[b + 1] = cu[b]! + qLen));
  const ctx = Int32Array.from(c.seqs.map(([, n]) => n));
  const blocksOf = (n: number) => Math.ceil(n / bs);
  const maxBlocks = Math.max(1, ...c.seqs.map(([, n]) => blocksOf(n)));
  const used = c.seqs.reduce((s, [, n]) => s + blocksOf(n), 0);
  const numBlocks = used + 3;
  // The pool's blocks in a random order, so no table is contiguous; entries past a sequence's
  // blocks are -1, which a kernel reading past its context would trip over.
  const random = rng(seed ^ 0x5bd1e995);
  const order = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const tables = new Int32Array(c.seqs.length * maxBlocks).fill(-1);
  let next = 0;
  c.seqs.forEach(([, n], b) => {
    for (let j = 0; j < blocksOf(n); j++) tables[b * maxBlocks + j] = order[next++]!;
  });
  const tokens = cu[c.seqs.length]!;
  const numSlots = numBlocks * bs;
  return {
    c, tokens, qHeads, numSlots, maxBlocks,
    maxQLen: Math.max(0, ...c.seqs.map(([q]) => q)),
    maxContextLen: Math.max(0, ...c.seqs.map(([, n]) => n)),
    q: roundTo(randomArray(tokens * qHeads * D, seed + 1, c.boost ?? 1), c.dtype),
    k: roundTo(randomArray(numSlots * kvHeads * D, seed + 2), c.dtype),
    v: roundTo(randomArray(numSlots * kvHeads * D, seed + 3), c.dtype),
    cu, ctx, tables,
  };
}

export interface StepTensors {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  meta: ops.PagedAttentionMeta;
  dispose(): void;
}

export function upload(s: FlashStep, device: Device): StepTensors {
  const { dtype, kvHeads, headDim: D } = s.c;
  const q = Tensor.fromArray(s.q, [s.tokens, s.qHeads, D], { dtype, device });
  const k = Tensor.fromArray(s.k, [s.numSlots, kvHeads, D], { dtype, device });
  const v = Tensor.fromArray(s.v, [s.numSlots, kvHeads, D], { dtype, device });
  const cuSeqlensQ = Tensor.fromArray(s.cu, [s.cu.length], { dtype: 'i32', device });
  const contextLens = Tensor.fromArray(s.ctx, [s.ctx.length], { dtype: 'i32', device });
  const blockTables = Tensor.fromArray(s.tables, [s.ctx.length, s.maxBlocks], { dtype: 'i32', device });
  // The engine's order (lesson 07's step input): longest context first, ties by index; decode v3 takes it.
  const byLength = Int32Array.from(s.ctx.keys()).sort((a, b) => s.ctx[b]! - s.ctx[a]! || a - b);
  const seqOrder = Tensor.fromArray(byLength, [byLength.length], { dtype: 'i32', device });
  const meta = { cuSeqlensQ, contextLens, blockTables, seqOrder, blockSize: s.c.blockSize, maxQLen: s.maxQLen, maxContextLen: s.maxContextLen };
  return { q, k, v, meta, dispose: () => [q, k, v, cuSeqlensQ, contextLens, blockTables, seqOrder].forEach((t) => t.dispose()) };
}

/**
 * float64 causal attention read straight from the pool: query i of sequence b at position
 * ctx - qLen + i, key p at slot tables[b][p / bs] * bs + p % bs, query head h on KV head h / group.
 */
export function reference64(s: FlashStep): Float64Array {
  const { kvHeads: Hkv, group, headDim: D, blockSize: bs } = s.c;
  const Hq = s.qHeads, scale = 1 / Math.sqrt(D);
  const out = new Float64Array(s.tokens * Hq * D);
  const scores = new Float64Array(s.maxContextLen);
  for (let b = 0; b < s.ctx.length; b++) {
    const qLen = s.cu[b + 1]! - s.cu[b]!, n = s.ctx[b]!;
    for (let i = 0; i < qLen; i++) {
      const t = s.cu[b]! + i, pos = n - qLen + i;
      for (let h = 0; h < Hq; h++) {
        const kvh = Math.floor(h / group), qo = (t * Hq + h) * D;
        let mx = -Infinity;
        for (let p = 0; p <= pos; p++) {
          const slot = s.tables[b * s.maxBlocks + Math.floor(p / bs)]! * bs + (p % bs);
          const ko = (slot * Hkv + kvh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += s.q[qo + d]! * s.k[ko + d]!;
          scores[p] = dot * scale;
          if (scores[p]! > mx) mx = scores[p]!;
        }
        let sum = 0;
        for (let p = 0; p <= pos; p++) sum += scores[p] = Math.exp(scores[p]! - mx);
        for (let p = 0; p <= pos; p++) {
          const slot = s.tables[b * s.maxBlocks + Math.floor(p / bs)]! * bs + (p % bs);
          const vo = (slot * Hkv + kvh) * D, w = scores[p]! / sum;
          for (let d = 0; d < D; d++) out[qo + d] = out[qo + d]! + w * s.v[vo + d]!;
        }
      }
    }
  }
  return out;
}

export interface Mismatch {
  relError: number;
  maxAbs: number;
  /** Elements that are NaN (never written, or computed as NaN). */
  nan: number;
  /** Where the first NaN, else the largest difference, is. */
  where: string;
}

/** ||out - ref|| / ||ref|| and where it goes wrong; NaN anywhere makes the error Infinity. */
export function mismatch(s: FlashStep, got: ArrayLike<number>, ref: ArrayLike<number>): Mismatch {
  let num = 0, den = 0, maxAbs = 0, worst = 0, nan = 0, firstNan = -1;
  for (let i = 0; i < ref.length; i++) {
    const o = got[i]!, r = ref[i]!;
    if (Number.isNaN(o) || Number.isNaN(r)) {
      if (firstNan < 0) firstNan = i;
      nan++;
      continue;
    }
    num += (o - r) ** 2;
    den += r * r;
    if (Math.abs(o - r) > maxAbs) [maxAbs, worst] = [Math.abs(o - r), i];
  }
  const i = firstNan >= 0 ? firstNan : worst;
  const D = s.c.headDim, t = Math.floor(i / (s.qHeads * D));
  let b = 0;
  while (b + 1 < s.ctx.length && s.cu[b + 1]! <= t) b++;
  const where = ref.length === 0 ? 'empty output' :
    `token ${t} (sequence ${b}: query ${t - s.cu[b]!} of ${s.cu[b + 1]! - s.cu[b]!}, context ${s.ctx[b]}) head ${Math.floor(i / D) % s.qHeads} dim ${i % D}: got ${got[i]}, want ${ref[i]}`;
  return { relError: nan ? Infinity : den === 0 ? Math.sqrt(num) : Math.sqrt(num / den), maxAbs, nan, where };
}

/** Error bounds against the CPU reference: bf16 operands land between 1e-3 and 1e-2 (METHOD.md). */
export { FLASH_TOLERANCE } from '../src/ops.ts';

const S = (q: number, n: number) => [q, n] as const;

/** Steps for the CPU suite: small enough for the float64 reference. */
export const CPU_CASES: FlashCase[] = [
  { seqs: [S(37, 37), S(1, 1), S(70, 70)], kvHeads: 2, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16' },
  { seqs: [S(17, 150), S(0, 9), S(5, 40)], kvHeads: 1, group: 4, headDim: 64, blockSize: 5, dtype: 'f16', boost: 4 },
  { seqs: [S(1, 300), S(1, 1), S(1, 65)], kvHeads: 2, group: 8, headDim: 128, blockSize: 32, dtype: 'f32' },
  { seqs: [S(12, 12), S(3, 77)], kvHeads: 3, group: 1, headDim: 256, blockSize: 16, dtype: 'bf16', boost: 6 },
];

/** A batch of `n` sequences with contexts drawn in [lo, hi] and `q` queries each. */
function batch(n: number, q: number, lo: number, hi: number, seed: number): (readonly [number, number])[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => S(q, Math.max(q, lo + Math.floor(r() * (hi - lo + 1)))));
}

/** Steps every prefill version runs on the GPU (versions skip what they do not support, saying why). */
export const GPU_PREFILL_CASES: FlashCase[] = [
  { seqs: [S(37, 37), S(1, 1), S(70, 70), S(128, 128), S(129, 129)], kvHeads: 2, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16' },
  { seqs: [S(200, 1000), S(64, 64), S(1, 513), S(333, 333)], kvHeads: 8, group: 4, headDim: 128, blockSize: 16, dtype: 'bf16', boost: 4 },
  { seqs: [S(100, 100), S(65, 300)], kvHeads: 1, group: 8, headDim: 128, blockSize: 7, dtype: 'f16' },
  { seqs: [S(90, 90), S(31, 200)], kvHeads: 4, group: 1, headDim: 64, blockSize: 32, dtype: 'bf16' },
  { seqs: [S(150, 150), S(3, 3)], kvHeads: 2, group: 5, headDim: 128, blockSize: 16, dtype: 'bf16', boost: 8 },
  { seqs: [S(50, 50), S(7, 90)], kvHeads: 2, group: 2, headDim: 128, blockSize: 16, dtype: 'f32' },
  { seqs: [S(40, 40), S(9, 100)], kvHeads: 2, group: 2, headDim: 256, blockSize: 16, dtype: 'bf16' },
  { seqs: [S(1024, 1024)], kvHeads: 8, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16' },
  { seqs: [S(256, 4096), S(77, 77)], kvHeads: 8, group: 4, headDim: 128, blockSize: 16, dtype: 'bf16', boost: 2 },
  { seqs: [S(1, 5000), S(1, 17), S(1, 64), S(0, 0)], kvHeads: 8, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16' },
  // cached prefixes that put a warp's first query 1-3 keys before a 64-key tile's end, and a warp's
  // last query on a tile's first key (prefill v5 masks and skips tiles per warp)
  { seqs: [S(64, 126), S(40, 101), S(96, 159)], kvHeads: 2, group: 1, headDim: 128, blockSize: 16, dtype: 'bf16' },
  { seqs: [S(10, 67), S(20, 69)], kvHeads: 2, group: 4, headDim: 128, blockSize: 16, dtype: 'bf16' },
];

/** Steps every decode version runs, each with these forced split counts besides the automatic one. */
export const GPU_DECODE_CASES: (FlashCase & { splits: number[] })[] = [
  { seqs: [S(1, 1), S(1, 63), S(1, 64), S(1, 65), S(1, 300), S(1, 2049)], kvHeads: 8, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16', splits: [1, 3, 13] },
  { seqs: batch(16, 1, 1, 4000, 7), kvHeads: 8, group: 4, headDim: 128, blockSize: 16, dtype: 'bf16', boost: 4, splits: [7] },
  { seqs: [S(1, 16384), S(1, 9000), S(1, 3)], kvHeads: 8, group: 4, headDim: 128, blockSize: 16, dtype: 'bf16', splits: [64] },
  { seqs: [S(1, 777), S(1, 1500)], kvHeads: 8, group: 8, headDim: 128, blockSize: 32, dtype: 'f16', boost: 6, splits: [5] },
  { seqs: [S(1, 200), S(1, 129)], kvHeads: 4, group: 1, headDim: 64, blockSize: 16, dtype: 'bf16', splits: [2] },
  { seqs: [S(1, 300), S(1, 40)], kvHeads: 2, group: 2, headDim: 128, blockSize: 16, dtype: 'f32', splits: [3] },
  { seqs: [S(1, 500), S(1, 70)], kvHeads: 2, group: 2, headDim: 256, blockSize: 16, dtype: 'bf16', splits: [3] },
  { seqs: [S(2, 90), S(2, 2), S(1, 33)], kvHeads: 1, group: 4, headDim: 128, blockSize: 16, dtype: 'bf16', splits: [2] },
  { seqs: [S(1, 10), S(0, 0), S(0, 40), S(1, 70)], kvHeads: 2, group: 3, headDim: 128, blockSize: 11, dtype: 'bf16', splits: [2] },
  { seqs: batch(64, 1, 900, 1100, 11), kvHeads: 8, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16', splits: [] },
];
