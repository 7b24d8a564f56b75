// The ops facade: every op the model needs, typed, with its arguments checked
// here so that a mistake is an exception naming the op, the argument and the
// problem. Each op writes into `out` when given one (the hot path passes
// preallocated buffers, which is what CUDA-graph capture needs later) and
// allocates it otherwise. The math lives in native/src/{cpu,cuda}.
import { type Device, deviceIndex, native } from './backend.ts';
import type {
  FlashCascadePlan as NativeFlashCascadePlan,
  FlashDecodePlan as NativeFlashDecodePlan,
  PersistentDecodePlan as NativePersistentDecodePlan,
} from '@aios/native';
import { type DType, dtypeCode, isFloat, isIndex } from './dtype.ts';
import { Tensor, copyInto, formatShape } from './tensor.ts';

class OpError extends Error {
  constructor(op: string, message: string) {
    super(`ops.${op}: ${message}`);
    this.name = 'OpError';
  }
}

function tensorArg(op: string, name: string, t: unknown): Tensor {
  if (!(t instanceof Tensor)) throw new OpError(op, `${name} must be a Tensor, got ${t === null ? 'null' : typeof t}`);
  if (t.disposed) throw new OpError(op, `${name} ${t} was disposed`);
  return t;
}

function contiguous(op: string, name: string, t: Tensor): void {
  if (!t.isContiguous()) throw new OpError(op, `${name} ${t} must be contiguous (call .contiguous())`);
}

// Pairwise checks take names and tensors as plain arguments: these run on every
// op call, and allocating objects here is measurable in the per-op overhead.
function sameDevice(op: string, firstName: string, first: Tensor, name: string, t: Tensor): void {
  if (t.device !== first.device) throw new OpError(op, `${name} is on ${t.device} but ${firstName} is on ${first.device}`);
}

function floatDtype(op: string, name: string, t: Tensor): void {
  if (!isFloat(t.dtype)) throw new OpError(op, `${name} must be bf16, f16 or f32, got ${t.dtype}`);
}

function sameDtype(op: string, firstName: string, first: Tensor, name: string, t: Tensor): void {
  if (t.dtype !== first.dtype) throw new OpError(op, `${name} is ${t.dtype} but ${firstName} is ${first.dtype}`);
}

function shapeIs(op: string, name: string, t: Tensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i]))
    throw new OpError(op, `${name} has shape ${formatShape(t.shape)}, expected ${formatShape(shape)}`);
}

/** Checks `out` if given, or allocates it beside `like`. */
function output(op: string, out: Tensor | undefined, shape: readonly number[], dtype: DType, like: Tensor): Tensor {
  if (out === undefined) return Tensor.empty(shape, { dtype, device: like.device });
  tensorArg(op, 'out', out);
  contiguous(op, 'out', out);
  shapeIs(op, 'out', out, shape);
  if (out.dtype !== dtype) throw new OpError(op, `out is ${out.dtype}, expected ${dtype}`);
  if (out.device !== like.device) throw new OpError(op, `out is on ${out.device}, the inputs on ${like.device}`);
  return out;
}

function elementwiseInput(op: string, name: string, t: unknown): Tensor {
  const x = tensorArg(op, name, t);
  floatDtype(op, name, x);
  contiguous(op, name, x);
  return x;
}

// ---------------------------------------------------------------- data movement

/** Sets every element of `t` (contiguous) to `value`. */
export function fill(t: Tensor, value: number): Tensor {
  tensorArg('fill', 't', t);
  contiguous('fill', 't', t);
  if (typeof value !== 'number') throw new OpError('fill', 'value must be a number');
  native.fill(dtypeCode(t.dtype), t.numel, value, t.storage, t.byteOffset);
  return t;
}

/** dst = src, any strides, casting between dtypes. */
export function copy(src: Tensor, dst: Tensor): Tensor {
  tensorArg('copy', 'src', src);
  tensorArg('copy', 'dst', dst);
  copyInto(src, dst);
  return dst;
}

export function cast(x: Tensor, dtype: DType, out?: Tensor): Tensor {
  tensorArg('cast', 'x', x);
  const o = output('cast', out, x.shape, dtype, x);
  copyInto(x, o);
  return o;
}

/** Joins tensors along `dim` by copying each into its slice of the output. */
export function concat(tensors: readonly Tensor[], dim: number, out?: Tensor): Tensor {
  if (!tensors || tensors.length === 0) throw new OpError('concat', 'needs at least one tensor');
  tensors.forEach((t, i) => tensorArg('concat', `tensors[${i}]`, t));
  const first = tensors[0]!;
  const d = dim < 0 ? dim + first.ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= first.ndim) throw new OpError('concat', `dim ${dim} is out of range for ${first.ndim}-d tensors`);
  tensors.forEach((t, i) => {
    if (t.ndim !== first.ndim || t.shape.some((s, j) => j !== d && s !== first.shape[j]))
      throw new OpError('concat', `tensors[${i}] has shape ${formatShape(t.shape)}, incompatible with ${formatShape(first.shape)} along dim ${d}`);
    if (t.dtype !== first.dtype) throw new OpError('concat', `tensors[${i}] is ${t.dtype}, tensors[0] is ${first.dtype}`);
    if (t.device !== first.device) throw new OpError('concat', `tensors[${i}] is on ${t.device}, tensors[0] on ${first.device}`);
  });
  const shape = [...first.shape];
  shape[d] = tensors.reduce((a, t) => a + t.shape[d]!, 0);
  const o = output('concat', out, shape, first.dtype, first);
  let start = 0;
  for (const t of tensors) {
    copyInto(t, o.narrow(d, start, t.shape[d]!));
    start += t.shape[d]!;
  }
  return o;
}

/** The checks of a row lookup: a contiguous 2-d float table and contiguous integer ids on its device. */
function checkLookup(op: string, table: Tensor, ids: Tensor, rowsName: string): void {
  tensorArg(op, 'table', table);
  tensorArg(op, 'ids', ids);
  if (table.ndim !== 2) throw new OpError(op, `table must be 2-d [${rowsName}, dim], got ${formatShape(table.shape)}`);
  floatDtype(op, 'table', table);
  contiguous(op, 'table', table);
  if (!isIndex(ids.dtype)) throw new OpError(op, `ids must be i32 or i64, got ${ids.dtype}`);
  contiguous(op, 'ids', ids);
  sameDevice(op, 'table', table, 'ids', ids);
}

/** out[i, :] = table[ids[i], :]. An id outside the vocabulary throws on the CPU; on CUDA it gives a zero row. */
export function embedding(table: Tensor, ids: Tensor, out?: Tensor): Tensor {
  const op = 'embedding';
  checkLookup(op, table, ids, 'vocab');
  const [vocab, dim] = table.shape as [number, number];
  const o = output(op, out, [...ids.shape, dim], table.dtype, table);
  native.embedding(dtypeCode(table.dtype), dtypeCode(ids.dtype), ids.numel, vocab, dim, table.storage, table.byteOffset,
    ids.storage, ids.byteOffset, o.storage, o.byteOffset);
  return o;
}

/**
 * Lesson 14's vocab-parallel lookup: `table` holds rows [start, start + rows) of a
 * `vocab`-row embedding; out[i, :] is ids[i]'s row where this table holds it, zeros
 * elsewhere (summing every rank's out gives the full lookup).
 */
export function embeddingShard(table: Tensor, ids: Tensor, vocab: number, start: number, out?: Tensor): Tensor {
  const op = 'embeddingShard';
  checkLookup(op, table, ids, 'rows');
  const [rows, dim] = table.shape as [number, number];
  if (!Number.isInteger(start) || start < 0 || start + rows > vocab) throw new OpError(op, `rows [${start}, ${start + rows}) are not inside the vocabulary of ${vocab}`);
  const o = output(op, out, [...ids.shape, dim], table.dtype, table);
  native.embeddingShard(dtypeCode(table.dtype), dtypeCode(ids.dtype), ids.numel, vocab, start, rows, dim, table.storage, table.byteOffset,
    ids.storage, ids.byteOffset, o.storage, o.byteOffset);
  return o;
}

/** out[i, :] = src[idx[i], :] over the first dimension. */
export function gatherRows(src: Tensor, idx: Tensor, out?: Tensor): Tensor {
  const op = 'gatherRows';
  tensorArg(op, 'src', src);
  tensorArg(op, 'idx', idx);
  if (src.ndim < 1) throw new OpError(op, 'src must have at least one dimension');
  contiguous(op, 'src', src);
  if (!isIndex(idx.dtype) || idx.ndim !== 1) throw new OpError(op, `idx must be a 1-d i32 or i64 tensor, got ${idx}`);
  contiguous(op, 'idx', idx);
  sameDevice(op, 'src', src, 'idx', idx);
  const rowShape = src.shape.slice(1);
  const o = output(op, out, [idx.numel, ...rowShape], src.dtype, src);
  const rowBytes = (src.numel / Math.max(1, src.shape[0]!)) * src.itemSize;
  native.gatherRows(dtypeCode(idx.dtype), src.shape[0]!, idx.numel, src.shape[0] === 0 ? 0 : rowBytes,
    src.storage, src.byteOffset, idx.storage, idx.byteOffset, o.storage, o.byteOffset);
  return o;
}

/** dst[idx[i], :] = src[i, :] over the first dimension (for example, writing K/V rows into a cache). */
export function scatterRows(src: Tensor, idx: Tensor, dst: Tensor): Tensor {
  const op = 'scatterRows';
  tensorArg(op, 'src', src);
  tensorArg(op, 'idx', idx);
  tensorArg(op, 'dst', dst);
  contiguous(op, 'src', src);
  contiguous(op, 'dst', dst);
  if (!isIndex(idx.dtype) || idx.ndim !== 1) throw new OpError(op, `idx must be a 1-d i32 or i64 tensor, got ${idx}`);
  contiguous(op, 'idx', idx);
  sameDevice(op, 'dst', dst, 'src', src);
  sameDevice(op, 'dst', dst, 'idx', idx);
  sameDtype(op, 'dst', dst, 'src', src);
  if (src.ndim !== dst.ndim || src.shape[0] !== idx.numel || src.shape.slice(1).some((s, i) => s !== dst.shape[i + 1]))
    throw new OpError(op, `src ${formatShape(src.shape)} must be [${idx.numel}, ${dst.shape.slice(1).join(', ')}] to scatter into dst ${formatShape(dst.shape)}`);
  const rowBytes = (dst.numel / Math.max(1, dst.shape[0]!)) * dst.itemSize;
  native.scatterRows(dtypeCode(idx.dtype), dst.shape[0]!, idx.numel, dst.shape[0] === 0 ? 0 : rowBytes,
    src.storage, src.byteOffset, idx.storage, idx.byteOffset, dst.storage, dst.byteOffset);
  return dst;
}

// ---------------------------------------------------------------- math

/**
 * out[..., N] = x[..., K] @ w[N, K]^T: nn.Linear's weight layout. bf16/f16 in,
 * float32 accumulation; `outDtype` defaults to x's dtype (f32 for logits, say).
 */
export function matmul(x: Tensor, w: Tensor, out?: Tensor, opts: { outDtype?: DType } = {}): Tensor {
  const op = 'matmul';
  tensorArg(op, 'x', x);
  tensorArg(op, 'w', w);
  floatDtype(op, 'x', x);
  sameDtype(op, 'x', x, 'w', w);
  sameDevice(op, 'x', x, 'w', w);
  contiguous(op, 'x', x);
  contiguous(op, 'w', w);
  if (w.ndim !== 2) throw new OpError(op, `w must be 2-d [N, K], got ${formatShape(w.shape)}`);
  if (x.ndim < 1) throw new OpError(op, 'x must have at least one dimension');
  const [N, K] = w.shape as [number, number];
  if (x.shape[x.ndim - 1] !== K)
    throw new OpError(op, `x ${formatShape(x.shape)} has inner size ${x.shape[x.ndim - 1]} but w ${formatShape(w.shape)} has K = ${K}`);
  const M = x.numel / Math.max(1, K);
  const outDtype = opts.outDtype ?? x.dtype;
  if (!isFloat(outDtype)) throw new OpError(op, `outDtype must be a float dtype, got ${outDtype}`);
  const o = output(op, out, [...x.shape.slice(0, -1), N], outDtype, x);
  native.matmulNT(dtypeCode(x.dtype), dtypeCode(outDtype), K === 0 ? x.numel : M, N, K, x.storage, x.byteOffset,
    w.storage, w.byteOffset, o.storage, o.byteOffset);
  return o;
}

/** out = x / sqrt(mean(x^2) + eps) * weight over the last dimension. */
export function rmsnorm(x: Tensor, weight: Tensor, eps: number, out?: Tensor): Tensor {
  const op = 'rmsnorm';
  elementwiseInput(op, 'x', x);
  tensorArg(op, 'weight', weight);
  sameDtype(op, 'x', x, 'weight', weight);
  sameDevice(op, 'x', x, 'weight', weight);
  const dim = x.shape[x.ndim - 1] ?? 1;
  shapeIs(op, 'weight', weight, [dim]);
  contiguous(op, 'weight', weight);
  if (!(eps >= 0)) throw new OpError(op, `eps must be a non-negative number, got ${eps}`);
  const o = output(op, out, x.shape, x.dtype, x);
  native.rmsnorm(dtypeCode(x.dtype), x.numel / Math.max(1, dim), dim, eps, x.storage, x.byteOffset,
    weight.storage, weight.byteOffset, o.storage, o.byteOffset);
  return o;
}

/**
 * Rotary position embedding, neox layout (the two halves of each head rotate
 * together): x [tokens, heads, headDim], positions i32 [tokens], cos/sin f32
 * [maxPos, headDim/2]. `out` may be x itself.
 */
export function rope(x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, out?: Tensor): Tensor {
  const op = 'rope';
  elementwiseInput(op, 'x', x);
  if (x.ndim !== 3) throw new OpError(op, `x must be [tokens, heads, headDim], got ${formatShape(x.shape)}`);
  const [tokens, heads, headDim] = x.shape as [number, number, number];
  if (headDim % 2 !== 0) throw new OpError(op, `headDim ${headDim} must be even`);
  tensorArg(op, 'positions', positions);
  if (positions.dtype !== 'i32') throw new OpError(op, `positions must be i32, got ${positions.dtype}`);
  shapeIs(op, 'positions', positions, [tokens]);
  contiguous(op, 'positions', positions);
  for (const [name, t] of [['cos', cos], ['sin', sin]] as const) {
    tensorArg(op, name, t);
    if (t.dtype !== 'f32') throw new OpError(op, `${name} must be f32, got ${t.dtype}`);
    if (t.ndim !== 2 || t.shape[1] !== headDim / 2)
      throw new OpError(op, `${name} must be [maxPos, ${headDim / 2}], got ${formatShape(t.shape)}`);
    contiguous(op, name, t);
  }
  shapeIs(op, 'sin', sin, cos.shape);
  sameDevice(op, 'x', x, 'positions', positions);
  sameDevice(op, 'x', x, 'cos', cos);
  sameDevice(op, 'x', x, 'sin', sin);
  const o = output(op, out, x.shape, x.dtype, x);
  native.ropeNeox(dtypeCode(x.dtype), tokens, heads, headDim, cos.shape[0]!, x.storage, x.byteOffset, o.storage, o.byteOffset,
    positions.storage, positions.byteOffset, cos.storage, cos.byteOffset, sin.storage, sin.byteOffset);
  return o;
}

export function silu(x: Tensor, out?: Tensor): Tensor {
  elementwiseInput('silu', 'x', x);
  const o = output('silu', out, x.shape, x.dtype, x);
  native.silu(dtypeCode(x.dtype), x.numel, x.storage, x.byteOffset, o.storage, o.byteOffset);
  return o;
}

function binary(op: 'add' | 'mul', a: Tensor, b: Tensor, out?: Tensor): Tensor {
  elementwiseInput(op, 'a', a);
  elementwiseInput(op, 'b', b);
  sameDtype(op, 'a', a, 'b', b);
  sameDevice(op, 'a', a, 'b', b);
  shapeIs(op, 'b', b, a.shape);
  const o = output(op, out, a.shape, a.dtype, a);
  native[op](dtypeCode(a.dtype), a.numel, a.storage, a.byteOffset, b.storage, b.byteOffset, o.storage, o.byteOffset);
  return o;
}

/** out = a + b (same shapes). */
export function add(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return binary('add', a, b, out);
}

/** out = a * b (same shapes). */
export function mul(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return binary('mul', a, b, out);
}

/** Softmax over the last dimension, float32 inside. */
export function softmax(x: Tensor, out?: Tensor): Tensor {
  elementwiseInput('softmax', 'x', x);
  const n = x.shape[x.ndim - 1] ?? 1;
  if (n === 0 && x.numel > 0) throw new OpError('softmax', 'the last dimension is empty');
  const o = output('softmax', out, x.shape, x.dtype, x);
  native.softmax(dtypeCode(x.dtype), n === 0 ? 0 : x.numel / n, n, x.storage, x.byteOffset, o.storage, o.byteOffset);
  return o;
}

export interface AttentionOptions {
  /** Defaults to 1/sqrt(headDim). */
  scale?: number;
  /** Query i sits at position kvLen - qLen + i and sees keys up to it. Default true. */
  causal?: boolean;
  /** float32 scratch of [qHeads, qLen, kvLen] for the materialized scores; allocated if omitted. */
  scores?: Tensor;
  /**
   * Paged K/V: i32 [kvLen], the row of k and v holding each key (k and v are then a
   * pool of [rows, kvHeads, D], shared by many sequences). Without it, key j is row j.
   */
  kvSlots?: Tensor;
}

/** An attention's q, k and v (or caches): each [layout], of the first one's dtype and device. */
function headTensors(op: string, layout: string, tensors: readonly (readonly [string, Tensor])[]): void {
  for (const [name, t] of tensors) {
    elementwiseInput(op, name, t);
    if (t.ndim !== 3) throw new OpError(op, `${name} must be [${layout}], got ${formatShape(t.shape)}`);
  }
  const [firstName, first] = tensors[0]!;
  for (let i = 1; i < tensors.length; i++) {
    const [name, t] = tensors[i]!;
    sameDtype(op, firstName, first, name, t);
    sameDevice(op, firstName, first, name, t);
  }
}

/**
 * Naive grouped-query attention over materialized scores: q [qLen, qHeads, D],
 * k and v [kvLen, kvHeads, D], out [qLen, qHeads, D].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, out?: Tensor, opts: AttentionOptions = {}): Tensor {
  const op = 'attention';
  headTensors(op, 'tokens, heads, headDim', [['q', q], ['k', k], ['v', v]]);
  const [qLen, qHeads, headDim] = q.shape as [number, number, number];
  const [kvRows, kvHeads] = k.shape as [number, number, number];
  shapeIs(op, 'k', k, [kvRows, kvHeads, headDim]);
  const slots = opts.kvSlots;
  if (slots !== undefined) {
    tensorArg(op, 'kvSlots', slots);
    if (slots.dtype !== 'i32' || slots.ndim !== 1) throw new OpError(op, `kvSlots must be a 1-d i32 tensor, got ${slots}`);
    contiguous(op, 'kvSlots', slots);
    sameDevice(op, 'q', q, 'kvSlots', slots);
  }
  const kvLen = slots ? slots.numel : kvRows;
  shapeIs(op, 'v', v, k.shape);
  if (kvHeads === 0 || qHeads % kvHeads !== 0) throw new OpError(op, `q heads (${qHeads}) must be a multiple of kv heads (${kvHeads})`);
  const causal = opts.causal ?? true;
  if (causal && qLen > kvLen) throw new OpError(op, `causal attention needs qLen (${qLen}) <= kvLen (${kvLen})`);
  const scale = opts.scale ?? 1 / Math.sqrt(headDim);
  const o = output(op, out, q.shape, q.dtype, q);
  let scores = opts.scores;
  if (scores === undefined) scores = Tensor.empty([qHeads, qLen, kvLen], { dtype: 'f32', device: q.device });
  else {
    tensorArg(op, 'scores', scores);
    if (scores.dtype !== 'f32') throw new OpError(op, `scores must be f32, got ${scores.dtype}`);
    contiguous(op, 'scores', scores);
    if (scores.numel < qHeads * qLen * kvLen) throw new OpError(op, `scores holds ${scores.numel} floats, needs ${qHeads * qLen * kvLen}`);
    sameDevice(op, 'q', q, 'scores', scores);
  }
  try {
    native.attention(dtypeCode(q.dtype), qLen, kvLen, qHeads, kvHeads, headDim, scale, causal, kvRows, q.storage, q.byteOffset,
      k.storage, k.byteOffset, v.storage, v.byteOffset, o.storage, o.byteOffset, scores.storage, scores.byteOffset, slots?.storage, slots?.byteOffset);
  } finally {
    if (opts.scores === undefined) scores.dispose();
  }
  return o;
}

/**
 * Where a packed step's sequences are: what the model runner uploads once per
 * step and every layer's attention reads (all i32, on the step's device).
 */
export interface PagedAttentionMeta {
  /** [numSeqs + 1]: sequence b's query tokens are rows cuSeqlensQ[b] .. cuSeqlensQ[b + 1] - 1. */
  cuSeqlensQ: Tensor;
  /** [numSeqs]: tokens of each sequence in the pool once this step's are stored. */
  contextLens: Tensor;
  /** [numSeqs, maxBlocksPerSeq]: each sequence's block ids (its page table). */
  blockTables: Tensor;
  blockSize: number;
  /** Host-known bounds, for launch shapes: the longest query run and the longest context of the step. */
  maxQLen: number;
  maxContextLen: number;
  /**
   * [numSeqs], optional: the sequences longest context first (a permutation of 0..numSeqs-1).
   * Lesson 09's decode v3 hands sequences to thread blocks in this order, so the last wave of a
   * ragged batch is short contexts; the other kernels and the CPU ignore it.
   */
  seqOrder?: Tensor;
}

function metaIndex(op: string, name: string, t: Tensor, ndim: number, like: Tensor): void {
  tensorArg(op, name, t);
  if (t.dtype !== 'i32' || t.ndim !== ndim) throw new OpError(op, `${name} must be a ${ndim}-d i32 tensor, got ${t}`);
  contiguous(op, name, t);
  sameDevice(op, 'q', like, name, t);
}

/**
 * Causal attention of a packed step over a paged KV pool: q [tokens, qHeads, D];
 * kCache and vCache [slots, kvHeads, D] (one layer of the pool, this step's K/V
 * already stored); sequence b's local query i sits at position
 * contextLens[b] - qLen_b + i and sees its keys 0..that, found through its
 * block table. Decode (one query per sequence), prefill and a prefill over a
 * cached prefix are all this one call.
 */
export function pagedAttention(q: Tensor, kCache: Tensor, vCache: Tensor, meta: PagedAttentionMeta, out?: Tensor, opts: { scale?: number } = {}): Tensor {
  const step = pagedStep('pagedAttention', q, kCache, vCache, meta, out, opts.scale);
  native.pagedAttention(...step.args);
  return step.out;
}

/** The binding's arguments for one paged-attention step, checked (shared by pagedAttention and lesson 09's kernels). */
function pagedStep(op: string, q: Tensor, kCache: Tensor, vCache: Tensor, meta: PagedAttentionMeta, out: Tensor | undefined, scaleOpt: number | undefined): { args: Parameters<typeof native.pagedAttention>; out: Tensor } {
  headTensors(op, 'rows, heads, headDim', [['q', q], ['kCache', kCache], ['vCache', vCache]]);
  const [tokens, qHeads, headDim] = q.shape as [number, number, number];
  const [slots, kvHeads] = kCache.shape as [number, number, number];
  shapeIs(op, 'kCache', kCache, [slots, kvHeads, headDim]);
  shapeIs(op, 'vCache', vCache, kCache.shape);
  if (kvHeads === 0 || qHeads % kvHeads !== 0) throw new OpError(op, `q heads (${qHeads}) must be a multiple of kv heads (${kvHeads})`);
  if (meta === null || typeof meta !== 'object') throw new OpError(op, 'meta must be a PagedAttentionMeta');
  metaIndex(op, 'meta.cuSeqlensQ', meta.cuSeqlensQ, 1, q);
  metaIndex(op, 'meta.contextLens', meta.contextLens, 1, q);
  metaIndex(op, 'meta.blockTables', meta.blockTables, 2, q);
  const numSeqs = meta.contextLens.numel;
  if (meta.seqOrder !== undefined) {
    metaIndex(op, 'meta.seqOrder', meta.seqOrder, 1, q);
    shapeIs(op, 'meta.seqOrder', meta.seqOrder, [numSeqs]);
  }
  shapeIs(op, 'meta.cuSeqlensQ', meta.cuSeqlensQ, [numSeqs + 1]);
  if (meta.blockTables.shape[0] !== numSeqs) throw new OpError(op, `meta.blockTables has ${meta.blockTables.shape[0]} rows for ${numSeqs} sequences`);
  const maxBlocks = meta.blockTables.shape[1]!;
  const { blockSize, maxQLen, maxContextLen } = meta;
  for (const [name, v] of [['blockSize', blockSize], ['maxQLen', maxQLen], ['maxContextLen', maxContextLen]] as const)
    if (!Number.isInteger(v) || v < (name === 'blockSize' ? 1 : 0)) throw new OpError(op, `meta.${name} must be a ${name === 'blockSize' ? 'positive' : 'non-negative'} integer, got ${v}`);
  if (slots % blockSize !== 0) throw new OpError(op, `the pool's ${slots} slots are not a whole number of ${blockSize}-slot blocks`);
  const scale = scaleOpt ?? 1 / Math.sqrt(headDim);
  const o = output(op, out, q.shape, q.dtype, q);
  return {
    out: o,
    args: [dtypeCode(q.dtype), numSeqs, tokens, qHeads, kvHeads, headDim, blockSize, maxBlocks, slots, maxQLen, maxContextLen, scale,
      q.storage, q.byteOffset, kCache.storage, kCache.byteOffset, vCache.storage, vCache.byteOffset, o.storage, o.byteOffset,
      meta.cuSeqlensQ.storage, meta.cuSeqlensQ.byteOffset, meta.contextLens.storage, meta.contextLens.byteOffset,
      meta.blockTables.storage, meta.blockTables.byteOffset, meta.seqOrder?.storage, meta.seqOrder?.byteOffset ?? 0],
  };
}

// ---------------------------------------------------------------- lesson 09: FlashAttention kernels

/** Lesson 09's kernel versions, oldest first (native/src/flash.h says what each one adds). */
export const FLASH_PREFILL_VERSIONS = [1, 2, 3, 4, 5] as const;
export const FLASH_DECODE_VERSIONS = [1, 2, 3] as const;
/** The relative error a flash kernel may show against the CPU reference (and lesson 08's kernel), per dtype. */
export const FLASH_TOLERANCE: Record<'bf16' | 'f16' | 'f32', number> = { bf16: 1.5e-2, f16: 3e-3, f32: 1e-5 };

export interface FlashOptions {
  /** Defaults to 1/sqrt(headDim); must be positive. */
  scale?: number;
  /** The kernel version; the newest by default. The CPU runs the reference whatever the version. */
  version?: number;
}

export interface FlashDecodeOptions extends FlashOptions {
  /** Blocks per (sequence, KV head) along the context; 0 or absent: chosen from the step's bounds and the SM count. */
  splits?: number;
  /**
   * float32 scratch for the splits' partial results, at least flashDecodePlan's workspaceBytes. Without
   * it a launch that splits allocates one and frees it after, which a forward must not do (lesson 11
   * captures the forward in a CUDA graph): the runner allocates it once.
   */
  workspace?: Tensor;
}

/** The plan functions' bounds: each a non-negative integer (or absent, for the names in `optional`). */
function planBounds<S extends object>(op: string, s: S, names: readonly (keyof S & string)[], optional: readonly (keyof S & string)[] = []): void {
  for (const name of names) {
    const v = s[name];
    if (v === undefined && optional.includes(name)) continue;
    if (!Number.isInteger(v) || (v as number) < 0) throw new OpError(op, `${name} must be a non-negative integer, got ${String(v)}`);
  }
}

/**
 * A decode's float32 scratch: the caller's, checked, or (CUDA, none given) one of `bytes()`
 * allocated for the launch (owned: the caller frees it after); none on the CPU, or where
 * `bytes()` says the launch needs none (undefined).
 */
function decodeWorkspace(op: string, q: Tensor, given: Tensor | undefined, bytes: () => number | undefined): { ws: Tensor | undefined; owned: boolean } {
  if (given !== undefined) {
    tensorArg(op, 'workspace', given);
    if (given.dtype !== 'f32') throw new OpError(op, `workspace must be f32, got ${given.dtype}`);
    contiguous(op, 'workspace', given);
    sameDevice(op, 'q', q, 'workspace', given);
    return { ws: given, owned: false };
  }
  if (q.device === 'cpu') return { ws: undefined, owned: false };
  const n = bytes();
  return n !== undefined ? { ws: Tensor.empty([Math.ceil(n / 4)], { dtype: 'f32', device: q.device }), owned: true } : { ws: undefined, owned: false };
}

function flashVersion(op: string, v: number | undefined, versions: readonly number[]): number {
  const version = v ?? versions[versions.length - 1]!;
  if (!versions.includes(version)) throw new OpError(op, `version must be one of ${versions.join(', ')}, got ${v}`);
  return version;
}

/**
 * Lesson 09's FlashAttention prefill over the paged pool: pagedAttention's semantics (any packed
 * step: prefill, cached prefix, decode), computed by prefill kernel `version` on CUDA (1: scalar tiles
 * in shared memory with an online softmax; 2: tensor cores; 3: 32 rows per warp; 4: 3-tile copy
 * ring; 5: 64-key tiles, fragments loaded a step ahead, the softmax in one FFMA and ex2 per score),
 * by the CPU reference on the host.
 */
export function flashPrefill(q: Tensor, kCache: Tensor, vCache: Tensor, meta: PagedAttentionMeta, out?: Tensor, opts: FlashOptions = {}): Tensor {
  const op = 'flashPrefill';
  const version = flashVersion(op, opts.version, FLASH_PREFILL_VERSIONS);
  const step = pagedStep(op, q, kCache, vCache, meta, out, opts.scale);
  native.flashPrefill(version, ...step.args);
  return step.out;
}

export interface FlashDecodeShape {
  device: Device;
  version?: number;
  splits?: number;
  numSeqs: number;
  numTokens: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  maxQLen: number;
  maxContextLen: number;
}

/** How flashDecode splits a step of these bounds on `device`, and the workspace bytes it needs (0 with one split). */
export function flashDecodePlan(s: FlashDecodeShape): NativeFlashDecodePlan {
  const op = 'flashDecodePlan';
  const version = flashVersion(op, s.version, FLASH_DECODE_VERSIONS);
  planBounds(op, s, ['splits', 'numSeqs', 'numTokens', 'qHeads', 'kvHeads', 'headDim', 'maxQLen', 'maxContextLen'], ['splits']);
  return native.flashDecodePlan(deviceIndex(s.device), version, s.splits ?? 0, s.numSeqs, s.numTokens, s.qHeads, s.kvHeads, s.headDim, s.maxQLen, s.maxContextLen);
}

/**
 * Lesson 09's decode attention over the paged pool (a step of few queries per sequence; decode
 * versions hold up to 8 (v1, v2) or 16 (v3) query rows per KV head: maxQLen times the GQA group).
 * Version 1: one block per (sequence, KV head); 2: the context split over blocks and combined;
 * 3: split, on tensor cores. The CPU reference on the host.
 */
export function flashDecode(q: Tensor, kCache: Tensor, vCache: Tensor, meta: PagedAttentionMeta, out?: Tensor, opts: FlashDecodeOptions = {}): Tensor {
  const op = 'flashDecode';
  const version = flashVersion(op, opts.version, FLASH_DECODE_VERSIONS);
  const splits = opts.splits ?? 0;
  if (!Number.isInteger(splits) || splits < 0) throw new OpError(op, `splits must be a non-negative integer, got ${splits}`);
  const step = pagedStep(op, q, kCache, vCache, meta, out, opts.scale);
  let launchSplits = splits;
  const { ws, owned } = decodeWorkspace(op, q, opts.workspace, () => {
    const [numTokens, qHeads, headDim] = q.shape as [number, number, number];
    const plan = flashDecodePlan({ device: q.device, version, splits, numSeqs: meta.contextLens.numel, numTokens, qHeads, kvHeads: kCache.shape[1]!, headDim, maxQLen: meta.maxQLen, maxContextLen: meta.maxContextLen });
    launchSplits = plan.splits; // the split just chosen, so the launch does not search for it again
    return plan.workspaceBytes > 0 ? plan.workspaceBytes : undefined; // one split: no workspace
  });
  try {
    native.flashDecode(version, launchSplits, ...step.args, ws?.storage, ws?.byteOffset);
  } finally {
    if (owned) ws!.dispose();
  }
  return step.out;
}

// ---------------------------------------------------------------- lesson 13: cascade (shared-prefix) decode

export interface CascadeDecodeShape {
  device: Device;
  numSeqs: number;
  numTokens: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  maxContextLen: number;
}

/** The cascade decode's launch shapes on `device` (from host-known bounds only) and its float32 workspace (0 on the CPU). */
export function flashCascadePlan(s: CascadeDecodeShape): NativeFlashCascadePlan {
  const op = 'flashCascadePlan';
  planBounds(op, s, ['numSeqs', 'numTokens', 'qHeads', 'kvHeads', 'headDim', 'maxContextLen']);
  return native.flashCascadePlan(deviceIndex(s.device), s.numSeqs, s.numTokens, s.qHeads, s.kvHeads, s.headDim, s.maxContextLen);
}

export interface CascadeDecodeOptions {
  /** Defaults to 1/sqrt(headDim); must be positive. */
  scale?: number;
  /** float32 scratch of at least flashCascadePlan's workspaceBytes (CUDA); without it one is allocated and freed. */
  workspace?: Tensor;
  /** Filled on the CPU with the keys the reference read per KV head (the plain decode reads the sum of the contexts). */
  stats?: { keysRead: number };
}

/**
 * Lesson 13's cascade decode: flashDecode's result for a decode step (at most one query per
 * sequence), computed so that the leading 256-key splits which adjacent sequences hold in the
 * same blocks (a shared prefix: the same first block id, the same block ids through the split)
 * are read once for all of them; each sequence's own keys are read by lesson 09's decode v3, and
 * one combine merges the partial (output, log-sum-exp) pairs. The groups come from the block
 * tables on the device: no host metadata, and the launch shapes depend only on the bounds (CUDA
 * graphs capture it). CUDA: bf16/f16, head size 64 or 128, up to 16 query heads per KV head. The
 * CPU reference on the host (any head size, f32 too).
 */
export function flashCascadeDecode(q: Tensor, kCache: Tensor, vCache: Tensor, meta: PagedAttentionMeta, out?: Tensor, opts: CascadeDecodeOptions = {}): Tensor {
  const op = 'flashCascadeDecode';
  if (meta !== null && typeof meta === 'object' && meta.maxQLen > 1) throw new OpError(op, `a decode step has maxQLen 0 or 1, got ${meta.maxQLen}`);
  const step = pagedStep(op, q, kCache, vCache, meta, out, opts.scale);
  const { ws, owned } = decodeWorkspace(op, q, opts.workspace, () => {
    const [numTokens, qHeads, headDim] = q.shape as [number, number, number];
    // The launch always takes a workspace, even of 0 bytes.
    return flashCascadePlan({ device: q.device, numSeqs: meta.contextLens.numel, numTokens, qHeads, kvHeads: kCache.shape[1]!, headDim, maxContextLen: meta.maxContextLen }).workspaceBytes;
  });
  try {
    const keysRead = native.flashCascadeDecode(...step.args, ws?.storage, ws?.byteOffset);
    if (opts.stats) opts.stats.keysRead = keysRead;
  } finally {
    if (owned) ws!.dispose();
  }
  return step.out;
}

/**
 * One token id per row of f32 logits [rows, vocab], drawn from
 * softmax(row / temperature[r]) by inverse CDF at uniform[r] in [0, 1) (the
 * caller's random numbers); temperature 0 takes the argmax. Only the ids need
 * to come back from the device.
 */
export function sampleRows(logits: Tensor, temperature: Tensor, uniform: Tensor, out?: Tensor): Tensor {
  const op = 'sampleRows';
  tensorArg(op, 'logits', logits);
  if (logits.dtype !== 'f32' || logits.ndim !== 2) throw new OpError(op, `logits must be 2-d f32 [rows, vocab], got ${logits}`);
  contiguous(op, 'logits', logits);
  const [rows, n] = logits.shape as [number, number];
  if (n === 0 && rows > 0) throw new OpError(op, 'the rows are empty');
  for (const [name, t] of [['temperature', temperature], ['uniform', uniform]] as const) {
    tensorArg(op, name, t);
    if (t.dtype !== 'f32') throw new OpError(op, `${name} must be f32, got ${t.dtype}`);
    shapeIs(op, name, t, [rows]);
    contiguous(op, name, t);
    sameDevice(op, 'logits', logits, name, t);
  }
  const o = output(op, out, [rows], 'i32', logits);
  native.sampleRows(rows, n, logits.storage, logits.byteOffset, temperature.storage, temperature.byteOffset, uniform.storage, uniform.byteOffset, o.storage, o.byteOffset);
  return o;
}

// ---------------------------------------------------------------- sampling on the device (lesson 12)

/** Words per row of the packed sampling parameters (aios.h SampleRowParams). */
export const SAMPLE_PARAM_WORDS = 12;
/** Words per penalty entry: (row, token, count in the output, 1 if in the prompt). */
export const SAMPLE_PENALTY_WORDS = 4;
/** Most log-prob alternatives per row (OpenAI's top_logprobs limit). */
export const MAX_SAMPLE_LOGPROBS = 20;

/** One row's sampling request, as sampleTokens takes it. */
export interface SampleRowSpec {
  /** 0: greedy. */
  temperature: number;
  /** 0: off. */
  topK: number;
  /** 1: off. */
  topP: number;
  /** 0: off. */
  minP: number;
  /** 1: off. */
  repetitionPenalty: number;
  /** 0: off. */
  presencePenalty: number;
  /** 0: off. */
  frequencyPenalty: number;
  /** The Philox key: an integer in [0, 2^53). */
  seed: number;
  /** The position of the token being drawn (the Philox counter): the sequence's length before it. */
  position: number;
  /** -1: no log-probs; 0..20: the chosen token's log-prob and that many alternatives'. */
  logprobs: number;
}

/** The int32 words of sampleTokens' output for `rows` rows: tokens, chosen log-probs, 20 top ids and 20 top log-probs per row. */
export function sampleOutWords(rows: number): number {
  return rows * (2 + 2 * MAX_SAMPLE_LOGPROBS);
}

/** Views into sampleTokens' output read back to the host. */
export interface SampleOut {
  tokens: Int32Array;
  /** Row r's chosen token's log-prob (rows that asked). */
  chosenLogprobs: Float32Array;
  /** Row r's alternatives at [r * 20, r * 20 + n), most likely first. */
  topIds: Int32Array;
  topLogprobs: Float32Array;
}

export function readSampleOut(words: Int32Array, rows: number): SampleOut {
  const L = MAX_SAMPLE_LOGPROBS;
  if (words.length < rows) throw new RangeError(`readSampleOut: ${words.length} words for ${rows} rows`);
  const full = words.length >= sampleOutWords(rows);
  const f32 = new Float32Array(words.buffer, words.byteOffset, words.length);
  return {
    tokens: words.subarray(0, rows),
    chosenLogprobs: full ? f32.subarray(rows, 2 * rows) : new Float32Array(0),
    topIds: full ? words.subarray(2 * rows, 2 * rows + rows * L) : new Int32Array(0),
    topLogprobs: full ? f32.subarray(2 * rows + rows * L, 2 * rows + 2 * rows * L) : new Float32Array(0),
  };
}

/** A row's bad parameter. Module-level rather than a closure made per call: checkSampleRow runs for every row of every step. */
function badSampleRow(op: string, r: number, m: string): OpError {
  return new OpError(op, `row ${r}: ${m}`);
}

function checkSampleRow(op: string, r: number, s: SampleRowSpec): void {
  if (!(Number.isFinite(s.temperature) && s.temperature >= 0)) throw badSampleRow(op, r, `temperature must be finite and >= 0, got ${s.temperature}`);
  if (!(Number.isInteger(s.topK) && s.topK >= 0 && s.topK <= 0x7fffffff)) throw badSampleRow(op, r, `topK must be an integer >= 0, got ${s.topK}`);
  if (!(s.topP > 0 && s.topP <= 1)) throw badSampleRow(op, r, `topP must be in (0, 1], got ${s.topP}`);
  if (!(s.minP >= 0 && s.minP <= 1)) throw badSampleRow(op, r, `minP must be in [0, 1], got ${s.minP}`);
  if (!(Number.isFinite(s.repetitionPenalty) && s.repetitionPenalty > 0)) throw badSampleRow(op, r, `repetitionPenalty must be finite and > 0, got ${s.repetitionPenalty}`);
  if (!Number.isFinite(s.presencePenalty) || !Number.isFinite(s.frequencyPenalty)) throw badSampleRow(op, r, 'presencePenalty and frequencyPenalty must be finite');
  if (!(Number.isInteger(s.seed) && s.seed >= 0 && s.seed <= Number.MAX_SAFE_INTEGER)) throw badSampleRow(op, r, `seed must be an integer in [0, 2^53), got ${s.seed}`);
  if (!(Number.isInteger(s.position) && s.position >= 0 && s.position <= 0xffffffff)) throw badSampleRow(op, r, `position must be a 32-bit unsigned integer, got ${s.position}`);
  if (!(Number.isInteger(s.logprobs) && s.logprobs >= -1 && s.logprobs <= MAX_SAMPLE_LOGPROBS))
    throw badSampleRow(op, r, `logprobs must be an integer in [-1, ${MAX_SAMPLE_LOGPROBS}], got ${s.logprobs}`);
}

/** Per vocabulary entry, the last (row group) that named it: O(1) a penalty entry, reused across calls. */
let penaltyStamp = new Int32Array(0);
let penaltyStampGeneration = 0;

/**
 * Throws on a (row, token) pair named twice. O(entries) with a reused stamp per token while
 * the entries come grouped by row (as the samplers write them); a Set otherwise.
 */
function checkPenaltiesUnique(op: string, penalties: Int32Array, E: number, vocab: number): void {
  const repeat = (e: number) =>
    new OpError(op, `penalty entry ${e} repeats (row ${penalties[e * SAMPLE_PENALTY_WORDS]}, token ${penalties[e * SAMPLE_PENALTY_WORDS + 1]}): each pair at most once`);
  let grouped = true;
  for (let e = 1; e < E && grouped; e++) grouped = penalties[e * SAMPLE_PENALTY_WORDS]! >= penalties[(e - 1) * SAMPLE_PENALTY_WORDS]!;
  if (!grouped) {
    const seen = new Set<number>();
    for (let e = 0; e < E; e++) {
      const key = penalties[e * SAMPLE_PENALTY_WORDS]! * vocab + penalties[e * SAMPLE_PENALTY_WORDS + 1]!;
      if (seen.has(key)) throw repeat(e);
      seen.add(key);
    }
    return;
  }
  if (penaltyStamp.length < vocab) penaltyStamp = new Int32Array(vocab);
  let row = -1;
  for (let e = 0; e < E; e++) {
    const r = penalties[e * SAMPLE_PENALTY_WORDS]!, token = penalties[e * SAMPLE_PENALTY_WORDS + 1]!;
    if (r !== row) {
      row = r;
      if (++penaltyStampGeneration === 0x7fffffff) {
        penaltyStamp.fill(0);
        penaltyStampGeneration = 1;
      }
    }
    if (penaltyStamp[token] === penaltyStampGeneration) throw repeat(e);
    penaltyStamp[token] = penaltyStampGeneration;
  }
}

/**
 * One token per row of f32 logits [rows, vocab], drawn where the logits are: per row,
 * penalties (the entries of `penalties`: SAMPLE_PENALTY_WORDS words each, (row, token,
 * count in the output, 1 if in the prompt), each (row, token) pair at most once) ->
 * temperature -> top-k -> top-p -> min-p -> one draw by the exponential race with
 * Philox numbers keyed by (seed, position, token); greedy rows take the argmax. The
 * parameters and penalties go up in one copy. Returns i32 [sampleOutWords(rows)]
 * (readSampleOut decodes it); read back only its first `rows` words when no row asked
 * for log-probs. The logits are left as they were.
 */
/** Float32 words of the workspace sampleTokens needs (pass one to read its per-row thresholds afterwards). */
export function sampleWorkspaceFloats(rows: number, vocab: number, penaltyEntries: number): number {
  return Math.max(1, Math.ceil(native.sampleWorkspaceBytes(rows, vocab, penaltyEntries) / 4));
}

export interface SampleTokensOptions {
  out?: Tensor;
  /**
   * f32 [sampleWorkspaceFloats(...)], else one is allocated for the call. Afterwards its first
   * `rows` floats hold each filtered row's keep-threshold (a logit value; -inf for rows without a
   * filter) and the next `rows` its penalized maximum, where some row filters.
   */
  workspace?: Tensor;
}

export function sampleTokens(logits: Tensor, rows: readonly SampleRowSpec[], penalties: Int32Array = new Int32Array(0), opts: SampleTokensOptions = {}): Tensor {
  const op = 'sampleTokens';
  tensorArg(op, 'logits', logits);
  if (logits.dtype !== 'f32' || logits.ndim !== 2) throw new OpError(op, `logits must be 2-d f32 [rows, vocab], got ${logits}`);
  contiguous(op, 'logits', logits);
  const R = logits.shape[0]!;
  if (!Array.isArray(rows) || rows.length !== R) throw new OpError(op, `${Array.isArray(rows) ? rows.length : 'no'} row specs for ${R} logits rows`);
  const params = uploadSampleParams(rows, penalties, logits.shape[1]!, logits.device, op);
  try {
    return sampleTokensWith(logits, params, opts);
  } finally {
    params.dispose();
  }
}

/**
 * sampleTokens' parameters and penalty entries, checked, packed and on the device. A sampler
 * that queues its kernels behind the forward uploads this before it (lesson 12's
 * GpuSampler.stage), then launches with sampleTokensWith: the copy from host memory no longer
 * waits for the stream in practice, but CUDA may still stage a large one (penalty entries of
 * long outputs) behind queued work, so it goes up while the device is idle.
 */
export interface SampleParams {
  readonly rows: number;
  readonly vocab: number;
  readonly penaltyEntries: number;
  readonly anyFiltered: boolean;
  readonly anyLogprobs: boolean;
  /** i32: the rows' parameters, then the penalty entries. */
  readonly packed: Tensor;
  dispose(): void;
}

export function uploadSampleParams(rows: readonly SampleRowSpec[], penalties: Int32Array, vocab: number, device: Device, op = 'uploadSampleParams'): SampleParams {
  if (!Array.isArray(rows)) throw new OpError(op, 'rows must be an array of row specs');
  const R = rows.length, n = vocab;
  if (!(Number.isInteger(n) && n >= 0)) throw new OpError(op, `vocab must be a non-negative integer, got ${n}`);
  if (n === 0 && R > 0) throw new OpError(op, 'the rows are empty');
  if (!(penalties instanceof Int32Array) || penalties.length % SAMPLE_PENALTY_WORDS !== 0)
    throw new OpError(op, `penalties must be an Int32Array of ${SAMPLE_PENALTY_WORDS} words per entry`);
  const E = penalties.length / SAMPLE_PENALTY_WORDS;
  for (let e = 0, w = 0; e < E; e++, w += SAMPLE_PENALTY_WORDS) {
    const row = penalties[w]!, token = penalties[w + 1]!, count = penalties[w + 2]!, inPrompt = penalties[w + 3]!;
    if (!(row >= 0 && row < R && token >= 0 && token < n && count >= 0 && (inPrompt === 0 || inPrompt === 1)))
      throw new OpError(op, `penalty entry ${e} (row ${row}, token ${token}, count ${count}, in prompt ${inPrompt}) is outside ${R} rows x ${n} tokens or malformed`);
  }
  // Each (row, token) at most once: the CUDA kernels penalize and restore each entry's logit
  // in place, and two entries of one logit would race and leave it changed.
  if (E > 1) checkPenaltiesUnique(op, penalties, E, n);
  // One upload: the rows' parameters, then the penalty entries.
  const words = new Int32Array(Math.max(1, R * SAMPLE_PARAM_WORDS + penalties.length));
  const f32 = new Float32Array(words.buffer);
  let anyFiltered = false, anyLogprobs = false;
  rows.forEach((s, r) => {
    checkSampleRow(op, r, s);
    if (s.logprobs > n) throw new OpError(op, `row ${r}: ${s.logprobs} log-prob alternatives asked of a vocabulary of ${n}`);
    const w = r * SAMPLE_PARAM_WORDS;
    f32[w] = s.temperature;
    words[w + 1] = s.topK;
    f32[w + 2] = s.topP;
    f32[w + 3] = s.minP;
    f32[w + 4] = s.repetitionPenalty;
    f32[w + 5] = s.presencePenalty;
    f32[w + 6] = s.frequencyPenalty;
    words[w + 7] = s.seed % 0x100000000 | 0;
    words[w + 8] = Math.floor(s.seed / 0x100000000) | 0;
    words[w + 9] = s.position | 0;
    words[w + 10] = s.logprobs;
    if (s.temperature > 0 && (s.topK > 0 || s.topP < 1 || s.minP > 0)) anyFiltered = true;
    if (s.logprobs >= 0) anyLogprobs = true;
  });
  words.set(penalties, R * SAMPLE_PARAM_WORDS);
  const packed = Tensor.fromArray(words, [words.length], { dtype: 'i32', device });
  return { rows: R, vocab: n, penaltyEntries: E, anyFiltered, anyLogprobs, packed, dispose: () => packed.dispose() };
}

/** sampleTokens with its parameters uploaded already (uploadSampleParams): queues the kernels, waits for nothing. */
export function sampleTokensWith(logits: Tensor, params: SampleParams, opts: SampleTokensOptions = {}): Tensor {
  return launchSample('sampleTokens', logits, params, opts);
}

/**
 * sampleTokens over whole rows, or (`shard`, lesson 14) one rank's race over its slice of them:
 * the checks both take, the workspace, and the one native call.
 */
function launchSample(op: string, logits: Tensor, params: SampleParams, opts: SampleTokensOptions, shard?: { indexBase: number }): Tensor {
  tensorArg(op, 'logits', logits);
  if (logits.dtype !== 'f32' || logits.ndim !== 2) throw new OpError(op, `logits must be 2-d f32 [rows, ${shard ? 'slice' : 'vocab'}], got ${logits}`);
  contiguous(op, 'logits', logits);
  const [R, n] = logits.shape as [number, number];
  if (params.rows !== R) throw new OpError(op, `${params.rows} row specs for ${R} logits rows`);
  const indexBase = shard?.indexBase ?? 0;
  if (shard) {
    if (params.penaltyEntries > 0 || params.anyFiltered || params.anyLogprobs)
      throw new OpError(op, 'a shard races plain rows only: penalties, top-k/top-p/min-p and log-probs need the whole row');
    if (!(Number.isInteger(indexBase) && indexBase >= 0 && indexBase % 4 === 0)) throw new OpError(op, `indexBase must be a non-negative multiple of 4, got ${indexBase}`);
    if (indexBase + n > params.vocab) throw new OpError(op, `the slice [${indexBase}, ${indexBase + n}) is outside the vocabulary of ${params.vocab} the rows were checked for`);
  } else if (params.vocab !== n) throw new OpError(op, `the parameters were checked for a vocabulary of ${params.vocab}, the logits have ${n}`);
  sameDevice(op, 'logits', logits, 'parameters', params.packed);
  const E = params.penaltyEntries;
  const o = output(op, opts.out, shard ? [R, 2] : [sampleOutWords(R)], 'i32', logits);
  if (R === 0) return o;
  const wsFloats = sampleWorkspaceFloats(R, n, E);
  if (opts.workspace !== undefined) {
    tensorArg(op, 'workspace', opts.workspace);
    if (opts.workspace.dtype !== 'f32' || !opts.workspace.isContiguous() || opts.workspace.numel < wsFloats)
      throw new OpError(op, `workspace must be contiguous f32 of at least ${wsFloats} elements, got ${opts.workspace}`);
    sameDevice(op, 'logits', logits, 'workspace', opts.workspace);
  }
  const ws = opts.workspace ?? Tensor.empty([wsFloats], { dtype: 'f32', device: logits.device });
  const up = params.packed;
  try {
    native.sampleTokens(R, n, E, params.anyFiltered, params.anyLogprobs, indexBase, shard !== undefined, logits.storage, logits.byteOffset,
      up.storage, up.byteOffset, up.storage, up.byteOffset + 4 * R * SAMPLE_PARAM_WORDS, o.storage, o.byteOffset, ws.storage, ws.byteOffset);
  } catch (e) {
    if (opts.out === undefined) o.dispose();
    throw e;
  } finally {
    if (ws !== opts.workspace) ws.dispose();
  }
  return o;
}

/** The index sampleTokensShard writes for a sampled row whose slice kept nothing (every entry NaN; a greedy row keeps a NaN as its largest). */
export const NO_SAMPLE_INDEX = 0x7fffffff;

/**
 * Lesson 14: one rank's share of sampleTokens' race. The logits are this rank's slice of each row,
 * vocabulary entries [indexBase, indexBase + n) (indexBase a multiple of 4), and every entry is
 * drawn with its global index, as the whole row's race draws it; out gets, per row, the slice's
 * best score (f32 bits) and its global index, [rows, 2] i32. raceWinners picks the best of the
 * ranks' pairs: the token sampleTokens would draw from the whole row. Plain rows only (temperature
 * or greedy): a filter, a penalty or log-probs need the whole row. params are uploadSampleParams'
 * for the whole vocabulary.
 */
export function sampleTokensShard(logits: Tensor, params: SampleParams, indexBase: number, opts: SampleTokensOptions = {}): Tensor {
  return launchSample('sampleTokensShard', logits, params, opts, { indexBase });
}

/**
 * The race's winner of each row from the ranks' sampleTokensShard pairs, [ranks][rows][2] words (the
 * score's f32 bits, the global index): the larger score, NaN counting as the largest and ties going to
 * the lower index, the order every race kernel keeps. A row no rank kept anything of is token 0, as
 * sampleTokens gives it.
 */
export function raceWinners(pairs: Int32Array, ranks: number, rows: number): number[] {
  if (pairs.length < 2 * ranks * rows) throw new RangeError(`raceWinners: ${pairs.length} words for ${ranks} ranks x ${rows} rows`);
  const scores = new Float32Array(pairs.buffer, pairs.byteOffset, pairs.length);
  const tokens = new Array<number>(rows);
  for (let r = 0; r < rows; r++) {
    let best = -Infinity, bestI = NO_SAMPLE_INDEX;
    for (let k = 0; k < ranks; k++) {
      const w = 2 * (k * rows + r), v = scores[w]!, i = pairs[w + 1]!;
      const better = Number.isNaN(v) ? !Number.isNaN(best) || i < bestI : !Number.isNaN(best) && (v > best || (v === best && i < bestI));
      if (better) {
        best = v;
        bestI = i;
      }
    }
    tokens[r] = bestI === NO_SAMPLE_INDEX ? 0 : bestI;
  }
  return tokens;
}

// ---------------------------------------------------------------- fused (lesson 10)

/**
 * The residual stream in one pass: residual += x (in place), then
 * out = rmsnorm(residual) * weight. What `add` then `rmsnorm` compute, in one launch.
 */
export function addRmsnorm(x: Tensor, residual: Tensor, weight: Tensor, eps: number, out?: Tensor): Tensor {
  const op = 'addRmsnorm';
  elementwiseInput(op, 'x', x);
  elementwiseInput(op, 'residual', residual);
  tensorArg(op, 'weight', weight);
  sameDtype(op, 'x', x, 'residual', residual);
  sameDtype(op, 'x', x, 'weight', weight);
  sameDevice(op, 'x', x, 'residual', residual);
  sameDevice(op, 'x', x, 'weight', weight);
  shapeIs(op, 'residual', residual, x.shape);
  const dim = x.shape[x.ndim - 1] ?? 1;
  shapeIs(op, 'weight', weight, [dim]);
  contiguous(op, 'weight', weight);
  if (!(eps >= 0)) throw new OpError(op, `eps must be a non-negative number, got ${eps}`);
  const o = output(op, out, x.shape, x.dtype, x);
  native.addRmsnorm(dtypeCode(x.dtype), x.numel / Math.max(1, dim), dim, eps, x.storage, x.byteOffset, residual.storage, residual.byteOffset,
    weight.storage, weight.byteOffset, o.storage, o.byteOffset);
  return o;
}

/** SwiGLU's middle from the fused gate/up projection: gateUp [..., 2I] -> silu(gate) * up [..., I]. */
export function siluMul(gateUp: Tensor, out?: Tensor): Tensor {
  const op = 'siluMul';
  elementwiseInput(op, 'gateUp', gateUp);
  const two = gateUp.shape[gateUp.ndim - 1] ?? 0;
  if (gateUp.ndim < 1 || two % 2 !== 0) throw new OpError(op, `gateUp's last dimension must be even (gate then up), got ${formatShape(gateUp.shape)}`);
  const inter = two / 2;
  const o = output(op, out, [...gateUp.shape.slice(0, -1), inter], gateUp.dtype, gateUp);
  native.siluMul(dtypeCode(gateUp.dtype), inter === 0 ? 0 : gateUp.numel / two, inter, gateUp.storage, gateUp.byteOffset, o.storage, o.byteOffset);
  return o;
}

export interface QkNormRopeStoreArgs {
  /** [tokens, (qHeads + 2 kvHeads) * headDim]: the fused q/k/v projection's output. */
  qkv: Tensor;
  qNorm: Tensor;
  kNorm: Tensor;
  eps: number;
  /** i32 [tokens]. */
  positions: Tensor;
  /** f32 [maxPos, headDim / 2]. */
  cos: Tensor;
  sin: Tensor;
  /** i32 [tokens]: the pool slot of each token's K/V (< 0: store nothing). */
  slotMapping: Tensor;
  /** One layer of the pool: [slots, kvHeads, headDim]. */
  kCache: Tensor;
  vCache: Tensor;
  qHeads: number;
}

/**
 * After the fused q/k/v projection, in one launch: q heads RMS-normed and rotated
 * into q [tokens, qHeads, headDim] (returned); k heads normed, rotated and stored
 * in the pool at their slots; v heads stored. Replaces two rmsnorms, two ropes
 * and two scatters.
 */
export function qkNormRopeStore(a: QkNormRopeStoreArgs, out?: Tensor): Tensor {
  const op = 'qkNormRopeStore';
  elementwiseInput(op, 'qkv', a.qkv);
  for (const [name, t] of [['kCache', a.kCache], ['vCache', a.vCache]] as const) {
    elementwiseInput(op, name, t);
    if (t.ndim !== 3) throw new OpError(op, `${name} must be [slots, kvHeads, headDim], got ${formatShape(t.shape)}`);
    sameDtype(op, 'qkv', a.qkv, name, t);
    sameDevice(op, 'qkv', a.qkv, name, t);
  }
  const [slots, kvHeads, headDim] = a.kCache.shape as [number, number, number];
  shapeIs(op, 'vCache', a.vCache, a.kCache.shape);
  const qHeads = a.qHeads;
  if (!Number.isInteger(qHeads) || qHeads < 1) throw new OpError(op, `qHeads must be a positive integer, got ${qHeads}`);
  if (headDim % 2 !== 0) throw new OpError(op, `headDim ${headDim} must be even`);
  if (a.qkv.ndim !== 2 || a.qkv.shape[1] !== (qHeads + 2 * kvHeads) * headDim)
    throw new OpError(op, `qkv must be [tokens, ${(qHeads + 2 * kvHeads) * headDim}] ((${qHeads} + 2 x ${kvHeads}) heads x ${headDim}), got ${formatShape(a.qkv.shape)}`);
  const tokens = a.qkv.shape[0]!;
  for (const [name, t] of [['qNorm', a.qNorm], ['kNorm', a.kNorm]] as const) {
    tensorArg(op, name, t);
    sameDtype(op, 'qkv', a.qkv, name, t);
    sameDevice(op, 'qkv', a.qkv, name, t);
    shapeIs(op, name, t, [headDim]);
    contiguous(op, name, t);
  }
  for (const [name, t] of [['positions', a.positions], ['slotMapping', a.slotMapping]] as const) {
    tensorArg(op, name, t);
    if (t.dtype !== 'i32') throw new OpError(op, `${name} must be i32, got ${t.dtype}`);
    shapeIs(op, name, t, [tokens]);
    contiguous(op, name, t);
    sameDevice(op, 'qkv', a.qkv, name, t);
  }
  for (const [name, t] of [['cos', a.cos], ['sin', a.sin]] as const) {
    tensorArg(op, name, t);
    if (t.dtype !== 'f32' || t.ndim !== 2 || t.shape[1] !== headDim / 2) throw new OpError(op, `${name} must be f32 [maxPos, ${headDim / 2}], got ${t}`);
    contiguous(op, name, t);
    sameDevice(op, 'qkv', a.qkv, name, t);
  }
  shapeIs(op, 'sin', a.sin, a.cos.shape);
  if (!(a.eps >= 0)) throw new OpError(op, `eps must be a non-negative number, got ${a.eps}`);
  const o = output(op, out, [tokens, qHeads, headDim], a.qkv.dtype, a.qkv);
  native.qkNormRopeStore(dtypeCode(a.qkv.dtype), tokens, qHeads, kvHeads, headDim, a.cos.shape[0]!, slots, a.eps,
    a.qkv.storage, a.qkv.byteOffset, a.qNorm.storage, a.qNorm.byteOffset, a.kNorm.storage, a.kNorm.byteOffset,
    a.positions.storage, a.positions.byteOffset, a.cos.storage, a.cos.byteOffset, a.sin.storage, a.sin.byteOffset,
    a.slotMapping.storage, a.slotMapping.byteOffset, o.storage, o.byteOffset, a.kCache.storage, a.kCache.byteOffset, a.vCache.storage, a.vCache.byteOffset);
  return o;
}

/** Index of the largest value over the last dimension (first on ties), as i32. */
export function argmax(x: Tensor, out?: Tensor): Tensor {
  elementwiseInput('argmax', 'x', x);
  const n = x.shape[x.ndim - 1] ?? 1;
  if (n === 0) throw new OpError('argmax', 'the last dimension is empty');
  const o = output('argmax', out, x.shape.slice(0, -1), 'i32', x);
  native.argmax(dtypeCode(x.dtype), x.numel / n, n, x.storage, x.byteOffset, o.storage, o.byteOffset);
  return o;
}

// ---- Lesson 11: the persistent decode step (native/src/persistent.h)

/** A model's shape and a decode step's rows: what persistentDecodePlan answers for. */
export interface PersistentDecodeShape {
  tokens: number;
  layers: number;
  hidden: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  inter: number;
}

/** Whether the persistent kernel runs a shape on a device (`why` is '' then), and how it divides the step (the addon's answer). */
export type PersistentDecodePlan = NativePersistentDecodePlan;

export function persistentDecodePlan(device: Device, s: PersistentDecodeShape): PersistentDecodePlan {
  planBounds('persistentDecodePlan', s, ['tokens', 'layers', 'hidden', 'qHeads', 'kvHeads', 'headDim', 'inter']);
  return native.persistentDecodePlan(deviceIndex(device), s.tokens, s.layers, s.hidden, s.qHeads, s.kvHeads, s.headDim, s.inter);
}

/** The decoder's weights stacked over the layers: [layers, ...] each (the fused forward's matrices). */
export interface PersistentDecodeWeights {
  /** [layers, (qHeads + 2 kvHeads) headDim, hidden] */
  qkv: Tensor;
  /** [layers, hidden, qHeads headDim] */
  o: Tensor;
  /** [layers, 2 inter, hidden]: gate rows, then up rows */
  gateUp: Tensor;
  /** [layers, hidden, inter] */
  down: Tensor;
  inputNorm: Tensor;
  postNorm: Tensor;
  qNorm: Tensor;
  kNorm: Tensor;
  /** [hidden] */
  finalNorm: Tensor;
}

export interface PersistentDecodeArgs {
  weights: PersistentDecodeWeights;
  /** [maxPos, headDim / 2] f32 each. */
  cos: Tensor;
  sin: Tensor;
  /** Lesson 06's pool: [layers, 2, slots, kvHeads, headDim]. */
  kvPool: Tensor;
  blockSize: number;
  /** [tokens] i32 each; one decode row per sequence. */
  positions: Tensor;
  slotMapping: Tensor;
  contextLens: Tensor;
  /** [tokens, width] i32. */
  blockTables: Tensor;
  /** [tokens, hidden]: in, the embeddings; out, the residual stream after the last layer. */
  residual: Tensor;
  /** [tokens, hidden]: the final norm of the residual (the LM head's input). */
  normedOut: Tensor;
  /** Scratch: [tokens, (qHeads + 2 kvHeads) headDim], [tokens, qHeads headDim], [tokens, inter]. */
  qkv: Tensor;
  attn: Tensor;
  act: Tensor;
  /** f32 of at least plan.partialFloats and i32 of at least plan.syncWords elements. */
  partials: Tensor;
  sync: Tensor;
  eps: number;
  /** Softmax scale, default 1 / sqrt(headDim). */
  scale?: number;
}

/**
 * Every decoder layer of a decode step of 1-8 rows in one CUDA launch (lesson 11): the same
 * function as lesson 10's fused forward from the embeddings to the final norm, new K/V stored
 * in the pool, with the blocks meeting at grid barriers between a layer's stages.
 */
export function persistentDecode(a: PersistentDecodeArgs): void {
  const op = 'persistentDecode';
  const w = a.weights;
  const named = (o: Record<string, Tensor>) => Object.entries(o);
  for (const [name, t] of named({ ...w, cos: a.cos, sin: a.sin, kvPool: a.kvPool, positions: a.positions, slotMapping: a.slotMapping, contextLens: a.contextLens, blockTables: a.blockTables, residual: a.residual, normedOut: a.normedOut, qkv: a.qkv, attn: a.attn, act: a.act, partials: a.partials, sync: a.sync })) {
    tensorArg(op, name, t);
    contiguous(op, name, t);
    sameDevice(op, 'weights.qkv', w.qkv, name, t);
  }
  for (const [name, t] of named({ ...w, kvPool: a.kvPool, residual: a.residual, normedOut: a.normedOut, qkv: a.qkv, attn: a.attn, act: a.act }))
    sameDtype(op, 'weights.qkv', w.qkv, name, t);
  if (w.qkv.ndim !== 3) throw new OpError(op, `weights.qkv must be [layers, rows, hidden], got ${formatShape(w.qkv.shape)}`);
  if (a.kvPool.ndim !== 5) throw new OpError(op, `kvPool must be [layers, 2, slots, kvHeads, headDim], got ${formatShape(a.kvPool.shape)}`);
  const [L, QKV, H] = w.qkv.shape as [number, number, number];
  const [, , slots, kvHeads, D] = a.kvPool.shape as [number, number, number, number, number];
  if (w.down.ndim !== 3) throw new OpError(op, `weights.down must be [layers, hidden, inter], got ${formatShape(w.down.shape)}`);
  const I = w.down.shape[2]!;
  const qHeads = QKV / D - 2 * kvHeads;
  if (!Number.isInteger(qHeads) || qHeads < 1) throw new OpError(op, `weights.qkv's ${QKV} rows are not (qHeads + 2 x ${kvHeads}) heads of ${D}`);
  shapeIs(op, 'kvPool', a.kvPool, [L, 2, slots, kvHeads, D]);
  shapeIs(op, 'weights.o', w.o, [L, H, qHeads * D]);
  shapeIs(op, 'weights.gateUp', w.gateUp, [L, 2 * I, H]);
  shapeIs(op, 'weights.down', w.down, [L, H, I]);
  for (const [name, t] of [['inputNorm', w.inputNorm], ['postNorm', w.postNorm]] as const) shapeIs(op, `weights.${name}`, t, [L, H]);
  for (const [name, t] of [['qNorm', w.qNorm], ['kNorm', w.kNorm]] as const) shapeIs(op, `weights.${name}`, t, [L, D]);
  shapeIs(op, 'weights.finalNorm', w.finalNorm, [H]);
  for (const [name, t] of [['cos', a.cos], ['sin', a.sin]] as const)
    if (t.dtype !== 'f32' || t.ndim !== 2 || t.shape[1] !== D / 2) throw new OpError(op, `${name} must be f32 [maxPos, ${D / 2}], got ${t}`);
  shapeIs(op, 'sin', a.sin, a.cos.shape);
  const T = a.positions.shape[0] ?? 0;
  for (const [name, t] of [['positions', a.positions], ['slotMapping', a.slotMapping], ['contextLens', a.contextLens]] as const) {
    if (t.dtype !== 'i32') throw new OpError(op, `${name} must be i32, got ${t.dtype}`);
    shapeIs(op, name, t, [T]);
  }
  if (a.blockTables.dtype !== 'i32' || a.blockTables.ndim !== 2 || a.blockTables.shape[0] !== T) throw new OpError(op, `blockTables must be i32 [${T}, width], got ${a.blockTables}`);
  shapeIs(op, 'residual', a.residual, [T, H]);
  shapeIs(op, 'normedOut', a.normedOut, [T, H]);
  shapeIs(op, 'qkv', a.qkv, [T, QKV]);
  shapeIs(op, 'attn', a.attn, [T, qHeads * D]);
  shapeIs(op, 'act', a.act, [T, I]);
  if (a.partials.dtype !== 'f32') throw new OpError(op, `partials must be f32, got ${a.partials.dtype}`);
  if (a.sync.dtype !== 'i32') throw new OpError(op, `sync must be i32, got ${a.sync.dtype}`);
  if (!Number.isInteger(a.blockSize) || a.blockSize < 1 || slots % a.blockSize !== 0) throw new OpError(op, `blockSize must divide the pool's ${slots} slots, got ${a.blockSize}`);
  if (!(a.eps >= 0)) throw new OpError(op, `eps must be a non-negative number, got ${a.eps}`);
  const scale = a.scale ?? 1 / Math.sqrt(D);
  const b = (t: Tensor) => [t.storage, t.byteOffset] as const;
  native.persistentDecode(dtypeCode(w.qkv.dtype), T, L, H, qHeads, kvHeads, D, I, a.cos.shape[0]!, slots, a.blockSize, a.blockTables.shape[1]!, a.eps, scale,
    ...b(w.qkv), ...b(w.o), ...b(w.gateUp), ...b(w.down), ...b(w.inputNorm), ...b(w.postNorm), ...b(w.qNorm), ...b(w.kNorm), ...b(w.finalNorm),
    ...b(a.cos), ...b(a.sin), ...b(a.kvPool), ...b(a.positions), ...b(a.slotMapping), ...b(a.contextLens), ...b(a.blockTables),
    ...b(a.residual), ...b(a.normedOut), ...b(a.qkv), ...b(a.attn), ...b(a.act), ...b(a.partials), ...b(a.sync));
}
