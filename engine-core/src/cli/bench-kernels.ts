// `pnpm bench:kernels`: lesson 09's FlashAttention kernels, version by version,
// on the shapes issue 10 names, with lesson 08's kernel beside them and PyTorch's
// scaled_dot_product_attention (flash backend) as the peer, measured on the same
// card in the same call (engine-core/scripts/sdpa_peer.py). One `kernel` record
// per run under bench-results/. (`pnpm bench kernels` can dispatch here later.)
//
//   pnpm bench:kernels [--only prefill|decode] [--quick | --tiny] [--peer FILE] [--budget-ms N]
//                      [--device cuda:N] [--no-record] [--json FILE]
//   pnpm bench:kernels --shapes-json FILE     write the shapes (for the peer script) and exit
//   pnpm bench:kernels --tiny --device cpu     a dry run of the harness on toy shapes (no record)
//
// Timing: CUDA events around N back-to-back calls (N so that one repeat is about
// 2 ms), after warm-up, median of the repeats, two passes; decode inputs rotate
// over several K/V pools when one would fit in L2, so every call reads HBM.
// Counting: prefill FLOPs = 4 x sum over queries of visible keys x headDim x qHeads;
// decode bytes = the visible keys' K and V rows of every KV head. Each version's
// output is checked against lesson 08's kernel on the same inputs before it is timed.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { type Device, DeviceTimer, emptyCache, parseDevice, synchronize } from '../backend.ts';
import { type KernelRecord, type KernelShape, type KernelShapeResult, type KernelTiming, currentCommit, hardwareInfo, writeRecord } from '../bench/records.ts';
import { type DType, dtypeSize } from '../dtype.ts';
import * as ops from '../ops.ts';
import { FLASH_TOLERANCE } from '../ops.ts';
import { cardRates, quantile } from '../bench/harness.ts';
import { mulberry32 } from '../random.ts';
import { Tensor } from '../tensor.ts';
import { runIfCommand } from './args.ts';

const USAGE = `usage: pnpm bench:kernels [--only prefill|decode] [--quick | --tiny] [--peer FILE] [--budget-ms N] [--device cuda:N] [--no-record] [--json FILE]
       pnpm bench:kernels --shapes-json FILE`;

const HEADS: Record<string, [number, number]> = { '0.6B': [16, 8], '8B': [32, 8] };
const DTYPE: DType = 'bf16';
const BLOCK = 16;

/** Causal FLOPs of `seqs` sequences of qLen queries over `context` keys: QK^T and PV, 2 FLOPs per multiply-add each. */
export function causalFlops(seqs: number, qLen: number, context: number, headDim: number, qHeads: number): number {
  const visible = qLen * (context - qLen) + (qLen * (qLen + 1)) / 2;  // query i sees context - qLen + i + 1 keys
  return 4 * seqs * visible * headDim * qHeads;
}

/** The issue's shapes (--quick: fewer; --tiny: toy sizes, a dry run of the harness, on the CPU too). */
export function kernelShapes(quick: boolean, tiny = false): KernelShape[] {
  const shapes: KernelShape[] = [];
  const add = (phase: 'prefill' | 'decode', model: string, seqs: number, qLen: number, context: number) => {
    const [qHeads, kvHeads] = HEADS[model]!;
    const headDim = 128;
    const name = phase === 'prefill' ? `prefill ${model} ${seqs}x${qLen}` : `decode ${model} batch ${seqs} ctx ${context}`;
    shapes.push({ name, phase, model, qHeads, kvHeads, headDim, seqs, qLen, context, flops: causalFlops(seqs, qLen, context, headDim, qHeads),
      kvBytes: 2 * seqs * context * kvHeads * headDim * dtypeSize(DTYPE) });
  };
  if (tiny) {
    add('prefill', '0.6B', 2, 40, 100);
    add('decode', '8B', 3, 1, 130);
    return shapes;
  }
  // The slowest shapes (lesson 08's kernel and v1 at 16k keys) last, so a run cut short keeps the rest.
  for (const model of ['0.6B', '8B']) add('prefill', model, 8, 2048, 2048);
  const decodes: [number, number][] = quick ? [[1, 4096], [64, 1024], [256, 4096]]
    : [[1, 1024], [1, 4096], [1, 16384], [8, 4096], [64, 1024], [64, 4096], [256, 1024], [256, 4096]];
  for (const model of ['0.6B', '8B']) for (const [b, ctx] of decodes) add('decode', model, b, 1, ctx);
  if (!quick) for (const model of ['0.6B', '8B']) add('prefill', model, 1, 16384, 16384);
  return shapes;
}

// ---------------------------------------------------------------- inputs on the device

/** Uniform values in [-1, 1) (never zeros: they can run faster), a 4M-element host draw tiled over the tensor. */
export function randomDevice(shape: number[], dtype: DType, device: Device, seed: number): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  const chunkLen = Math.min(numel, 1 << 22);
  const r = mulberry32(seed);
  const host = new Float32Array(chunkLen);
  for (let i = 0; i < chunkLen; i++) host[i] = r() * 2 - 1;
  const chunk = Tensor.fromArray(host, [chunkLen], { dtype, device });
  const flat = Tensor.empty([numel], { dtype, device });
  for (let at = 0; at < numel; at += chunkLen) {
    const n = Math.min(chunkLen, numel - at);
    ops.copy(n === chunkLen ? chunk : chunk.narrow(0, 0, n), flat.narrow(0, at, n));
  }
  chunk.dispose();
  return flat.view(shape);
}

interface Step {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  /** One per rotation: the same shape over different blocks of the pool. */
  metas: ops.PagedAttentionMeta[];
  dispose(): void;
}

/** A step of `shape` with `rotations` copies of its K/V in one pool, each reached through its own block tables. */
function buildStep(s: KernelShape, device: Device, rotations: number, seed: number): Step {
  const T = s.seqs * s.qLen, nb = Math.ceil(s.context / BLOCK), blocks = rotations * s.seqs * nb;
  const q = randomDevice([T, s.qHeads, s.headDim], DTYPE, device, seed);
  const k = randomDevice([blocks * BLOCK, s.kvHeads, s.headDim], DTYPE, device, seed + 1);
  const v = randomDevice([blocks * BLOCK, s.kvHeads, s.headDim], DTYPE, device, seed + 2);
  // Blocks handed out in a random order, as a pool that has run for a while would.
  const r = mulberry32(seed + 3);
  const order = Int32Array.from({ length: blocks }, (_, i) => i);
  for (let i = blocks - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const cu = Tensor.fromArray(Int32Array.from({ length: s.seqs + 1 }, (_, b) => b * s.qLen), [s.seqs + 1], { dtype: 'i32', device });
  const ctx = Tensor.fromArray(new Int32Array(s.seqs).fill(s.context), [s.seqs], { dtype: 'i32', device });
  const tables: Tensor[] = [];
  const metas = Array.from({ length: rotations }, (_, rot) => {
    const t = Tensor.fromArray(order.subarray(rot * s.seqs * nb, (rot + 1) * s.seqs * nb), [s.seqs, nb], { dtype: 'i32', device });
    tables.push(t);
    return { cuSeqlensQ: cu, contextLens: ctx, blockTables: t, blockSize: BLOCK, maxQLen: s.qLen, maxContextLen: s.context };
  });
  return { q, k, v, metas, dispose: () => [q, k, v, cu, ctx, ...tables].forEach((t) => t.dispose()) };
}

// ---------------------------------------------------------------- timing

interface Timed {
  medianMs: number;
  minMs: number;
  maxMs: number;
  repeats: number;
  callsPerRepeat: number;
  passMedians: number[];
}

const median = (xs: readonly number[]): number => quantile(xs, 0.5);

/** Device ms per call of fn(i) (i picks the rotation): events around N calls, median of repeats, two passes. */
function timeCalls(device: Device, fn: (i: number) => void, budgetMs: number): Timed {
  // The host clock on the CPU (a --tiny dry run), CUDA events on a GPU.
  const timer = device === 'cpu' ? hostTimer() : new DeviceTimer(device);
  let i = 0;
  timer.start();
  fn(i++);
  const firstMs = timer.stopMs();  // already warm: the check ran it once
  const calls = Math.max(1, Math.min(64, Math.round(2 / Math.max(firstMs, 1e-3))));
  const perRepeat = calls * firstMs;
  const passes = perRepeat > 50 ? 1 : 2;
  const repeats = perRepeat > 500 ? 2 : Math.max(3, Math.min(15, Math.floor(budgetMs / passes / perRepeat)));
  const all: number[] = [], passMedians: number[] = [];
  for (let p = 0; p < passes; p++) {
    for (let w = 0; w < (perRepeat > 50 ? 0 : 2); w++) for (let c = 0; c < calls; c++) fn(i++);
    const times: number[] = [];
    for (let r = 0; r < repeats; r++) {
      timer.start();
      for (let c = 0; c < calls; c++) fn(i++);
      times.push(timer.stopMs() / calls);
    }
    passMedians.push(median(times));
    all.push(...times);
  }
  synchronize(device);
  return { medianMs: median(all), minMs: Math.min(...all), maxMs: Math.max(...all), repeats: all.length, callsPerRepeat: calls, passMedians };
}

function hostTimer(): { start(): void; stopMs(): number } {
  let t0 = 0;
  return { start: () => void (t0 = performance.now()), stopMs: () => performance.now() - t0 };
}

/** Relative L2 error of got against ref; null where either holds a NaN. */
export function relError(got: Float32Array, ref: Float32Array): number | null {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const o = got[i]!, r = ref[i]!;
    if (Number.isNaN(o) || Number.isNaN(r)) return null;
    num += (o - r) ** 2;
    den += r * r;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

const TOLERANCE = FLASH_TOLERANCE.bf16;

// ---------------------------------------------------------------- one shape

type Runner = (step: Step, out: Tensor, rot: number) => void;

function versionsOf(s: KernelShape, ws: Tensor | undefined): [string, Runner][] {
  const lesson08: [string, Runner] = ['lesson08', (st, out, r) => ops.pagedAttention(st.q, st.k, st.v, st.metas[r]!, out)];
  if (s.phase === 'prefill')
    return [lesson08, ...ops.FLASH_PREFILL_VERSIONS.map((v): [string, Runner] => [`v${v}`, (st, out, r) => ops.flashPrefill(st.q, st.k, st.v, st.metas[r]!, out, { version: v })])];
  return [lesson08, ...ops.FLASH_DECODE_VERSIONS.map((v): [string, Runner] => [`v${v}`, (st, out, r) => ops.flashDecode(st.q, st.k, st.v, st.metas[r]!, out, { version: v, workspace: ws })])];
}

function benchShape(s: KernelShape, device: Device, budgetMs: number, seed: number, log: (line: string) => void): KernelShapeResult {
  // Rotate over enough pools that the K/V of one call is never still in the 60 MB L2.
  const rotations = s.phase === 'decode' ? Math.max(1, Math.min(32, Math.ceil((256 << 20) / s.kvBytes))) : 1;
  const step = buildStep(s, device, rotations, seed);
  const shape = [s.seqs * s.qLen, s.qHeads, s.headDim];
  const out = Tensor.empty(shape, { dtype: DTYPE, device });
  let ws: Tensor | undefined;
  const notes: Record<string, string> = {};
  if (s.phase === 'decode') {
    let most = 0;
    for (const version of ops.FLASH_DECODE_VERSIONS) {
      const plan = ops.flashDecodePlan({ device, version, numSeqs: s.seqs, numTokens: s.seqs, qHeads: s.qHeads, kvHeads: s.kvHeads, headDim: s.headDim, maxQLen: 1, maxContextLen: s.context });
      notes[`v${version}`] = `${plan.splits} split(s) of ${plan.partition} keys`;
      most = Math.max(most, plan.workspaceBytes);
    }
    if (most > 0) ws = Tensor.empty([Math.ceil(most / 4)], { dtype: 'f32', device });
  }
  const result: KernelShapeResult = { ...s, versions: [] };
  let reference: Float32Array | undefined;
  try {
    for (const [version, run] of versionsOf(s, ws)) {
      const t: KernelTiming = { version, medianMs: NaN, minMs: NaN, maxMs: NaN, repeats: 0, callsPerRepeat: 0 };
      if (notes[version]) t.note = notes[version];
      try {
        ops.fill(out, NaN);  // poisoned: an unwritten element fails the check
        run(step, out, 0);
        const got = out.toArray() as Float32Array;
        if (version === 'lesson08') reference = got;
        t.relErrVsLesson08 = reference ? relError(got, reference) : null;
        const timed = timeCalls(device, (i) => run(step, out, i % rotations), budgetMs);
        Object.assign(t, { medianMs: timed.medianMs, minMs: timed.minMs, maxMs: timed.maxMs, repeats: timed.repeats, callsPerRepeat: timed.callsPerRepeat });
        t.note = [t.note, `pass medians ${timed.passMedians.map((m) => m.toFixed(4)).join(' / ')} ms`, rotations > 1 ? `${rotations} K/V pools rotated` : ''].filter(Boolean).join('; ');
        if (s.phase === 'prefill') t.tflops = s.flops / (timed.medianMs * 1e-3) / 1e12;
        else t.gbPerS = s.kvBytes / (timed.medianMs * 1e-3) / 1e9;
      } catch (e) {
        t.error = (e as Error).message;
      }
      const check = t.relErrVsLesson08 === null || t.relErrVsLesson08 === undefined ? (version === 'lesson08' ? 'reference' : 'NaN!')
        : t.relErrVsLesson08 < TOLERANCE ? `ok ${t.relErrVsLesson08.toExponential(1)}` : `FAIL ${t.relErrVsLesson08.toExponential(1)}`;
      log(`${s.name.padEnd(30)} ${version.padEnd(9)} ${t.error ? `ERROR ${t.error}` : `${t.medianMs.toFixed(4)} ms  ${rate(s, t)}  check ${check}`}`);
      result.versions.push(t);
    }
  } finally {
    step.dispose();
    out.dispose();
    ws?.dispose();
    emptyCache(device);
  }
  return result;
}

function rate(s: KernelShape, t: KernelTiming): string {
  return s.phase === 'prefill' ? `${(t.tflops ?? NaN).toFixed(1)} TFLOP/s` : `${(t.gbPerS ?? NaN).toFixed(0)} GB/s`;
}

/** Read+write bytes per second of a 1 GiB device-to-device copy (lesson 00's ceiling), this call. */
function measureCopy(device: Device, n: number): number {
  const src = randomDevice([n], 'f32', device, 99), dst = Tensor.empty([n], { dtype: 'f32', device });
  const t = timeCalls(device, () => ops.copy(src, dst), 300);
  src.dispose();
  dst.dispose();
  return (2 * n * 4) / (t.medianMs * 1e-3) / 1e9;
}

interface PeerFile {
  torch?: string;
  card?: string;
  note?: string;
  copy?: { gbPerS: number };
  shapes: Record<string, KernelTiming>;
}

/** The card's copy bandwidth from its lesson-00 record, chosen as every roofline chooses it (cardRates). */
function lesson00Copy(card: string): { gbPerS?: number; file?: string } {
  const rates = cardRates(card);
  return { gbPerS: rates?.bandwidthGBps, file: rates?.source };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' }, quick: { type: 'boolean', default: false }, tiny: { type: 'boolean', default: false }, peer: { type: 'string' }, 'budget-ms': { type: 'string' },
      device: { type: 'string' }, 'no-record': { type: 'boolean', default: false }, json: { type: 'string' }, 'shapes-json': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.only !== undefined && values.only !== 'prefill' && values.only !== 'decode') throw new Error(`--only must be prefill or decode, got "${values.only}"\n${USAGE}`);
  const shapes = kernelShapes(values.quick!, values.tiny!).filter((s) => !values.only || s.phase === values.only);
  if (values['shapes-json']) {
    writeFileSync(values['shapes-json'], JSON.stringify({ dtype: DTYPE, blockSize: BLOCK, shapes }, null, 2) + '\n');
    console.log(`bench:kernels: ${shapes.length} shapes written to ${values['shapes-json']}`);
    return 0;
  }
  const device = parseDevice(values.device ?? 'cuda');
  if (device === 'cpu' && !values.tiny) throw new Error('bench:kernels times CUDA kernels: it needs a CUDA device (--tiny --device cpu dry-runs the harness)');
  const budgetMs = values['budget-ms'] ? Number(values['budget-ms']) : 600;
  if (!(budgetMs > 0)) throw new Error(`--budget-ms must be a positive number, got "${values['budget-ms']}"`);
  const peer: PeerFile | undefined = values.peer ? (JSON.parse(readFileSync(values.peer, 'utf8')) as PeerFile) : undefined;
  const hardware = hardwareInfo(device);
  const seed = 20261130;

  console.log(`bench:kernels: ${hardware.card}, ${shapes.length} shapes, ${DTYPE}, block size ${BLOCK}, budget ${budgetMs} ms per version`);
  const copyGbPerS = measureCopy(device, values.tiny ? 1 << 20 : 1 << 28);
  const l00 = lesson00Copy(hardware.card);
  console.log(`copy bandwidth (1 GiB device-to-device, read + write): ${copyGbPerS.toFixed(0)} GB/s this call` +
    (l00.gbPerS ? `; lesson 00 recorded ${l00.gbPerS.toFixed(0)} GB/s (${l00.file})` : '') +
    (peer?.copy ? `; torch ${peer.copy.gbPerS.toFixed(0)} GB/s` : ''));
  const results: KernelShapeResult[] = [];
  const recordOf = (partial: boolean): KernelRecord => ({
    schema: 1,
    kind: 'kernel',
    lesson: 9,
    family: 'flash-attention',
    date: new Date().toISOString(),
    commit: currentCommit(),
    hardware,
    settings: {
      device, dtype: DTYPE, blockSize: BLOCK, headDim: 128, budgetMsPerVersion: budgetMs, quick: values.quick, seed,
      ...(partial ? { partial: `${results.length} of ${shapes.length} shapes so far` } : {}),
      timing: 'CUDA events around N back-to-back calls (a repeat of about 2 ms), warm-up first, median of repeats over two passes; decode K/V rotated over pools so calls read HBM',
      counting: 'prefill: 4 x sum over queries of visible keys x headDim x qHeads FLOPs; decode: bytes of the visible keys\' K and V rows',
      check: 'each version\'s output vs lesson 08\'s CUDA pagedAttention on the same inputs, relative L2 error, before timing',
    },
    results: {
      shapes: results,
      ceilings: { copyGbPerS, lesson00CopyGbPerS: l00.gbPerS, lesson00Record: l00.file, peerCopyGbPerS: peer?.copy?.gbPerS },
      peer: peer ? { library: 'torch.nn.functional.scaled_dot_product_attention (flash backend)', version: peer.torch, note: peer.note } : undefined,
    },
  });
  for (const [n, s] of shapes.entries()) {
    const r = benchShape(s, device, budgetMs, seed + 17 * n, (line) => console.log(line));
    const p = peer?.shapes[s.name];
    if (p) r.peer = p;
    results.push(r);
    // What is measured so far survives a run cut short.
    if (values.json && n + 1 < shapes.length) writeFileSync(values.json, JSON.stringify(recordOf(true), null, 2) + '\n');
  }

  const record = recordOf(false);
  if (values.json) writeFileSync(values.json, JSON.stringify(record, null, 2) + '\n');
  if (!values['no-record'] && !values.tiny) console.log(`record: ${writeRecord(record)}`);
  console.log('\n' + summary(record));
  return results.some((r) => r.versions.some((v) => v.error || (v.version !== 'lesson08' && !(typeof v.relErrVsLesson08 === 'number' && v.relErrVsLesson08 < TOLERANCE)))) ? 1 : 0;
}

/** The short table printed last: each shape's best version against the peer and the copy ceiling. */
export function summary(record: KernelRecord): string {
  const copy = record.results.ceilings.copyGbPerS;
  const rows = record.results.shapes.map((s) => {
    const ok = s.versions.filter((v) => !v.error && Number.isFinite(v.medianMs));
    const cell = (v: KernelTiming) => (s.phase === 'prefill' ? `${v.version} ${(v.tflops ?? NaN).toFixed(0)}` : `${v.version} ${(v.gbPerS ?? NaN).toFixed(0)}`);
    const best = ok.filter((v) => v.version !== 'lesson08').sort((a, b) => a.medianMs - b.medianMs)[0];
    let target = '';
    if (best && s.phase === 'prefill' && s.peer?.tflops) target = `${((100 * best.tflops!) / s.peer.tflops).toFixed(0)}% of SDPA ${s.peer.tflops.toFixed(0)} (need 60%)`;
    if (best && s.phase === 'decode' && copy) target = `${((100 * best.gbPerS!) / copy).toFixed(0)}% of copy ${copy.toFixed(0)} (need 70% at batch 64/256)`;
    return `${s.name.padEnd(30)} ${ok.map(cell).join(' | ')}  ${target}`;
  });
  return [`${'shape'.padEnd(30)} version TFLOP/s (prefill) or K/V GB/s (decode)`, ...rows].join('\n');
}

runIfCommand(import.meta.url, 'bench:kernels', main);
