// The projection GEMMs of a decode step (out[M, N] = x[M, K] @ w[N, K]^T, bf16) at
// small batches: the weight-streaming kernel (native/src/cuda/gemm_small.cu; this process
// sets AIOS_SMALL_GEMM=1 unless told otherwise) against cuBLASLt on the same inputs. The process
// times its own path, then runs itself again with AIOS_SMALL_GEMM=0 (the switch is
// read once per process), and the child's timings and outputs come back through files.
//
//   tsx engine-core/src/cli/bench-gemm.ts [--models 0.6B,8B,8B-tp2,0.6B-head] [--m 1,8,16,32,64] [--json FILE]
//                                        [--peak-gbps 4180] [--repeats N]
//   tsx engine-core/src/cli/bench-gemm.ts --tiny --device cpu    a dry run of the harness on toy shapes
//
// Timing: each shape's calls are captured in a CUDA graph (as lesson 11 replays a decode
// step), over enough copies of the weight that none is still in L2 when it is read again;
// CUDA events around a replay, median of the repeats, divided by the calls in the graph.
// Rate: the weight's bytes per second (x and the output are a rounding error at M <= 64),
// and its share of --peak-gbps (the H200's measured device-to-device copy rate by default).
// Check: each path's output for the first copy of the weight against an f32 matmul of the
// same bf16 values (relative L2 error), and the max abs difference between the two paths.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { type Device, DeviceTimer, captureGraph, emptyCache, parseDevice, synchronize } from '../backend.ts';
import { hardwareInfo } from '../bench/records.ts';
import { quantile } from '../bench/harness.ts';
import * as ops from '../ops.ts';
import { Tensor } from '../tensor.ts';
import { randomDevice, relError as kernelRelError } from './bench-kernels.ts';
import { deviceFlag, intFlag, positiveFlag, runIfCommand } from './args.ts';

const USAGE = `usage: tsx engine-core/src/cli/bench-gemm.ts [--models 0.6B,8B,8B-tp2,0.6B-head] [--m 1,8,16,32,64] [--json FILE] [--peak-gbps N] [--repeats N] [--device cuda:N]
       tsx engine-core/src/cli/bench-gemm.ts --tiny --device cpu`;

/** Qwen3's per-layer projections as [name, N, K] (qkv and gate_up fused, as lesson 10 runs them). */
const PROJECTIONS: Record<string, [string, number, number][]> = {
  '0.6B': [['qkv', 4096, 1024], ['o', 1024, 2048], ['gate_up', 6144, 1024], ['down', 1024, 3072]],
  '8B': [['qkv', 6144, 4096], ['o', 4096, 4096], ['gate_up', 24576, 4096], ['down', 4096, 12288]],
  // One rank's share of 8B on two (lesson 14): column-parallel N and row-parallel K halved.
  '8B-tp2': [['qkv', 3072, 4096], ['o', 4096, 2048], ['gate_up', 12288, 4096], ['down', 4096, 6144]],
  // The logits of every step (tied to the embedding in 0.6B): the largest single read at batch 1.
  '0.6B-head': [['lm_head', 151936, 1024]],
  tiny: [['qkv', 200, 64], ['down', 72, 136]],
};
const POOL_BYTES = 512 << 20;  // weight copies rotate through this: 10x the H200's 50 MB L2
const L2_SAFE_BYTES = 256 << 20;  // a copy is read again only after this many other bytes

interface Shape {
  model: string;
  proj: string;
  M: number;
  N: number;
  K: number;
}
const keyOf = (s: Shape) => `${s.model}-${s.proj}-M${s.M}`;
const weightBytes = (s: Shape) => s.N * s.K * 2;

interface Timing {
  usPerCall: number;
  calls: number;
  rotations: number;
}

/** Device microseconds per call of `call(r)` (r: the weight copy), from graph replays (host clock on the CPU). */
function timeCalls(device: Device, call: (r: number) => void, rotations: number, repeats: number): Timing {
  const calls = rotations * Math.max(1, Math.ceil(16 / rotations));
  const once = () => {
    for (let i = 0; i < calls; i++) call(i % rotations);
  };
  const times: number[] = [];
  if (device === 'cpu') {
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      once();
      times.push(performance.now() - t0);
    }
  } else {
    const graph = captureGraph(device, once);
    try {
      const timer = new DeviceTimer(device);
      graph.launch();
      graph.launch();
      for (let r = 0; r < repeats; r++) {
        timer.start();
        graph.launch();
        times.push(timer.stopMs());
      }
    } finally {
      graph.dispose();
    }
  }
  return { usPerCall: (quantile(times, 0.5) * 1000) / calls, calls, rotations };
}

interface PathResult {
  timings: Record<string, Timing>;
}

/**
 * Times every shape on this process's matmul path; writes each output for the first copy of the weight
 * to dir/KEY.f32 and, with `reference`, the f32 matmul of the same values to dir/KEY.ref.f32.
 */
function runPath(shapes: Shape[], device: Device, repeats: number, dir: string, reference: boolean, log: (line: string) => void): PathResult {
  const poolElems = device === 'cpu' ? 1 << 20 : POOL_BYTES / 2;
  const pool = randomDevice([poolElems], 'bf16', device, 20261207);
  const timings: Record<string, Timing> = {};
  try {
    for (const s of shapes) {
      const numel = s.N * s.K;
      if (numel > poolElems) throw new Error(`${keyOf(s)}: the weight (${numel} elements) is larger than the pool`);
      const rotations = Math.max(1, Math.min(Math.floor(poolElems / numel), Math.ceil(L2_SAFE_BYTES / weightBytes(s))));
      const weights = Array.from({ length: rotations }, (_, r) => pool.narrow(0, r * numel, numel).view([s.N, s.K]));
      const x = randomDevice([s.M, s.K], 'bf16', device, 7 + s.M + s.K);
      const out = Tensor.empty([s.M, s.N], { dtype: 'bf16', device });
      try {
        ops.matmul(x, weights[0]!, out);  // the plan, and the output checked
        writeFileSync(path.join(dir, `${keyOf(s)}.f32`), out.toArray() as Float32Array);
        if (reference) writeFileSync(path.join(dir, `${keyOf(s)}.ref.f32`), referenceOf(x, weights[0]!));
        timings[keyOf(s)] = timeCalls(device, (r) => ops.matmul(x, weights[r]!, out), rotations, repeats);
      } finally {
        x.dispose();
        out.dispose();
      }
      log(`  ${keyOf(s)}: ${timings[keyOf(s)]!.usPerCall.toFixed(2)} us`);
    }
  } finally {
    pool.dispose();
    emptyCache(device);
  }
  return { timings };
}

/** The f32 matmul of the same bf16 values (cuBLASLt's f32 path): the reference both paths are held to. */
function referenceOf(x: Tensor, w: Tensor): Float32Array {
  const x32 = ops.cast(x, 'f32'), w32 = ops.cast(w, 'f32');
  const out = ops.matmul(x32, w32);
  const ref = out.toArray() as Float32Array;
  for (const t of [x32, w32, out]) t.dispose();
  return ref;
}

function readFloats(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); // one copy, 4-byte aligned
}

/** bench-kernels' relative error, NaN where an output holds a NaN. */
function relError(got: Float32Array, ref: Float32Array): number {
  return kernelRelError(got, ref) ?? NaN;
}
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!)); // a NaN makes m NaN from there on
  return m;
}

/** Runs this script again with AIOS_SMALL_GEMM=0: cuBLASLt's timings and outputs, through files in dir. */
function runCublasChild(argv: string[], dir: string): PathResult {
  const script = path.resolve(process.argv[1]!);
  const r = spawnSync(process.execPath, [...process.execArgv, script, ...argv, '--as-child', dir], {
    env: { ...process.env, AIOS_SMALL_GEMM: '0' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`the cuBLASLt run (AIOS_SMALL_GEMM=0) failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${r.stdout}${r.stderr}`);
  return JSON.parse(readFileSync(path.join(dir, 'timings.json'), 'utf8')) as PathResult;
}

async function main(): Promise<number> {
  // This process times the small-M kernel at every shape it takes (by default matmul_nt sends it only
  // the shapes where it measured faster); the comparison run sets 0. Read at the first matmul.
  process.env.AIOS_SMALL_GEMM ??= '1';
  const { values } = parseArgs({
    options: {
      models: { type: 'string' }, m: { type: 'string' }, json: { type: 'string' }, 'peak-gbps': { type: 'string' }, repeats: { type: 'string' },
      device: { type: 'string' }, tiny: { type: 'boolean', default: false }, 'as-child': { type: 'string' }, help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const device = deviceFlag(values.device, parseDevice) ?? parseDevice('cuda');
  if (device === 'cpu' && !values.tiny) throw new Error('bench-gemm times CUDA kernels: it needs a CUDA device (--tiny --device cpu dry-runs the harness)');
  const models = values.tiny ? ['tiny'] : (values.models ?? '0.6B,8B,0.6B-head').split(',');
  for (const m of models) if (!PROJECTIONS[m]) throw new Error(`--models: unknown model "${m}" (0.6B, 8B, 0.6B-head)\n${USAGE}`);
  const ms = (values.m ?? (values.tiny ? '1,17' : '1,8,16,32,64')).split(',').map(Number);
  if (ms.some((m) => !Number.isInteger(m) || m < 1)) throw new Error(`--m must list positive integers, got "${values.m}"\n${USAGE}`);
  const peak = positiveFlag('peak-gbps', values['peak-gbps']) ?? 4180;
  const repeats = intFlag('repeats', values.repeats, { min: 1 }) ?? 15;
  const shapes: Shape[] = [];
  for (const model of models) for (const M of ms) for (const [proj, N, K] of PROJECTIONS[model]!) shapes.push({ model, proj, M, N, K });

  const child = values['as-child'];
  if (child) {  // the cuBLASLt side: timings and outputs to files, nothing printed
    const result = runPath(shapes, device, repeats, child, false, () => {});
    writeFileSync(path.join(child, 'timings.json'), JSON.stringify(result));
    return 0;
  }

  console.log(`bench-gemm: ${hardwareInfo(device).card}, ${shapes.length} shapes, bf16, weights rotated over ${POOL_BYTES >> 20} MB; ` +
    `rates as % of ${peak} GB/s; AIOS_SMALL_GEMM=${process.env.AIOS_SMALL_GEMM ?? '(unset)'} here, 0 in the comparison run`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'aios-bench-gemm-'));
  const ownDir = path.join(dir, 'own'), cublasDir = path.join(dir, 'cublas');
  mkdirSync(ownDir);
  mkdirSync(cublasDir);
  let failed = false;
  try {
    console.log('this process (matmul as dispatched):');
    const own = runPath(shapes, device, repeats, ownDir, true, console.log);
    synchronize(device);
    const argv = ['--models', models.join(','), '--m', ms.join(','), '--repeats', String(repeats), '--device', device, ...(values.tiny ? ['--tiny'] : [])];
    const cublas = runCublasChild(argv, cublasDir);

    const rows: object[] = [];
    const rate = (s: Shape, us: number) => weightBytes(s) / (us * 1e-6) / 1e9;
    console.log(`\n${'shape'.padEnd(22)} ${'M'.padStart(3)} | ${'small us'.padStart(9)} ${'GB/s'.padStart(6)} ${'%peak'.padStart(6)} | ${'cuBLAS us'.padStart(9)} ${'GB/s'.padStart(6)} ${'%peak'.padStart(6)} | speedup | max|small-cuBLAS| | rel err vs f32: small, cuBLAS`);
    const perLayer = new Map<string, { own: number; cublas: number; bytes: number }>();
    for (const s of shapes) {
      const k = keyOf(s), a = own.timings[k]!, b = cublas.timings[k]!;
      const got = readFloats(path.join(ownDir, `${k}.f32`)), theirs = readFloats(path.join(cublasDir, `${k}.f32`));
      const ref = readFloats(path.join(ownDir, `${k}.ref.f32`));
      const errOwn = relError(got, ref), errCublas = relError(theirs, ref), diff = maxAbsDiff(got, theirs);
      // bf16 output: a relative error near bf16's half-ulp (2^-9) is the rounding itself
      const ok = Number.isFinite(errOwn) && errOwn < 1e-2 && Number.isFinite(diff);
      if (!ok) failed = true;
      const pct = (us: number) => ((100 * rate(s, us)) / peak).toFixed(1);
      console.log(`${`${s.model} ${s.proj} ${s.N}x${s.K}`.padEnd(22)} ${String(s.M).padStart(3)} | ${a.usPerCall.toFixed(2).padStart(9)} ${rate(s, a.usPerCall).toFixed(0).padStart(6)} ${pct(a.usPerCall).padStart(6)} | ` +
        `${b.usPerCall.toFixed(2).padStart(9)} ${rate(s, b.usPerCall).toFixed(0).padStart(6)} ${pct(b.usPerCall).padStart(6)} | ${(b.usPerCall / a.usPerCall).toFixed(2).padStart(6)}x | ` +
        `${diff.toExponential(2).padStart(16)} | ${errOwn.toExponential(2)}, ${errCublas.toExponential(2)}${ok ? '' : '  FAIL'}`);
      const layer = `${s.model} M=${s.M}`;
      const l = perLayer.get(layer) ?? { own: 0, cublas: 0, bytes: 0 };
      perLayer.set(layer, { own: l.own + a.usPerCall, cublas: l.cublas + b.usPerCall, bytes: l.bytes + weightBytes(s) });
      rows.push({ ...s, weightBytes: weightBytes(s), small: a, cublas: b, maxAbsDiff: diff, relErrSmall: errOwn, relErrCublas: errCublas });
    }
    console.log('\nper layer (the projections back to back; the head alone):');
    for (const [layer, l] of perLayer)
      console.log(`  ${layer.padEnd(12)} small ${l.own.toFixed(1).padStart(7)} us (${((100 * l.bytes) / (l.own * 1e-6) / 1e9 / peak).toFixed(0)}% of peak)   ` +
        `cuBLAS ${l.cublas.toFixed(1).padStart(7)} us (${((100 * l.bytes) / (l.cublas * 1e-6) / 1e9 / peak).toFixed(0)}%)   ${(l.cublas / l.own).toFixed(2)}x`);
    if (values.json)
      writeFileSync(values.json, JSON.stringify({ card: hardwareInfo(device).card, date: new Date().toISOString(), peakGbPerS: peak, repeats, shapes: rows }, null, 2) + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

runIfCommand(import.meta.url, 'bench-gemm', main);
