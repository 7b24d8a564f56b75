// The all-reduce through our NCCL binding, timed on the GPUs of this host: what a
// tensor-parallel step pays for its 2L + 1 all-reduces (two per decoder layer, one
// for the embedding), at the message sizes a step of a given model sends, and the
// bus bandwidth NCCL reaches at large sizes (nccl-tests' busbw: algbw x 2(n-1)/n
// for an all-reduce over n ranks).
//
//   tsx lessons/14-tensor-parallelism/src/allreduce-bench.ts [--tp N] [--preset 8B] [--iters 50] [--out FILE.json]
//
// Rank 0 is this thread, ranks 1..N-1 worker threads (one GPU each), as in the engine.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, workerData } from 'node:worker_threads';

import { DeviceTimer, Tensor, native, synchronize } from '@aios/engine-core';
import { dtypeCode } from '@aios/engine-core/dtype.ts';
import { PRESETS, type PresetName, isPresetName } from '@aios/engine-core/model/config.ts';

import { CTRL, GroupMemory, type GroupShape } from './group-memory.ts';

interface Spec {
  sab: SharedArrayBuffer;
  shape: GroupShape;
  rank: number;
  ncclId: Uint8Array;
  sizes: number[];
  iters: number;
  entry: string;
}

const WARMUP = 5;

/** Every rank: for each size, meet, then `WARMUP + iters` all-reduces of `bytes` bf16 bytes; rank 0 times the last `iters`. */
function runRank(spec: Spec, mem: GroupMemory): number[] {
  const device = `cuda:${spec.rank}` as const;
  const comm = new native.NcclComm(spec.rank, spec.shape.size, spec.rank, spec.ncclId, 120_000);
  const times: number[] = [];
  try {
    const largest = Math.max(...spec.sizes);
    const buf = Tensor.full([largest / 2], 1, { dtype: 'bf16', device });
    const timer = spec.rank === 0 ? new DeviceTimer(device) : undefined;
    for (const bytes of spec.sizes) {
      const n = bytes / 2;
      synchronize(device);
      mem.barrier(spec.rank, `size ${bytes}`, 120_000);
      for (let i = 0; i < WARMUP; i++) comm.allReduce(dtypeCode('bf16'), n, buf.storage, 0, buf.storage, 0);
      timer?.start();
      for (let i = 0; i < spec.iters; i++) comm.allReduce(dtypeCode('bf16'), n, buf.storage, 0, buf.storage, 0);
      if (timer) times.push(timer.stopMs() / spec.iters);
      comm.wait();
    }
    buf.dispose();
    return times;
  } finally {
    comm.dispose();
  }
}

if (!isMainThread && (workerData as Spec | undefined)?.entry) {
  const spec = workerData as Spec;
  const mem = new GroupMemory(spec.sab, spec.shape);
  try {
    runRank(spec, mem);
  } catch (e) {
    mem.fail(spec.rank, e instanceof Error ? e.message : String(e));
  } finally {
    Atomics.add(mem.ctrl, CTRL.exited, 1);
    Atomics.notify(mem.ctrl, CTRL.exited);
  }
} else if (isMainThread) {
  const { values } = parseArgs({ options: { tp: { type: 'string' }, preset: { type: 'string' }, iters: { type: 'string' }, out: { type: 'string' } } });
  const info = native.backendInfo();
  if (!info.cudaUsable || !info.nccl) throw new Error(`allreduce-bench needs CUDA and an addon built with NCCL (cudaUsable ${info.cudaUsable}, nccl ${info.nccl})`);
  const size = Number(values.tp ?? info.deviceCount);
  if (!Number.isInteger(size) || size < 2 || size > info.deviceCount) throw new Error(`--tp must be in [2, ${info.deviceCount}] on this host, got ${values.tp}`);
  const presetName = values.preset ?? '8B';
  if (!isPresetName(presetName)) throw new Error(`--preset: unknown ${presetName}`);
  const cfg = PRESETS[presetName as PresetName];
  const iters = Number(values.iters ?? 50);
  const H = cfg.hiddenSize, perStep = 2 * cfg.numLayers + 1;
  // A step's messages: T tokens x hidden x 2 bytes, for decode batches and prefill chunks; then large sizes for the bus bandwidth.
  const stepTokens = [1, 8, 32, 64, 128, 256, 2048, 16384];
  const big = [32, 64, 128, 256, 512].map((mb) => mb * 2 ** 20);
  const sizes = [...stepTokens.map((t) => t * H * 2), ...big];
  const shape: GroupShape = { size, planInts: 4, slotBytes: 8 };
  const mem = GroupMemory.create(shape);
  const ncclId = native.ncclUniqueId();
  const entry = new URL(import.meta.url).href;
  const workers = Array.from({ length: size - 1 }, (_, i) => {
    const spec: Spec = { sab: mem.sab, shape, rank: i + 1, ncclId, sizes, iters, entry };
    const w = new Worker(new URL('./boot.mjs', import.meta.url), { workerData: spec });
    w.unref();
    return w;
  });
  const ms = runRank({ sab: mem.sab, shape, rank: 0, ncclId, sizes, iters, entry }, mem);
  for (let n; (n = Atomics.load(mem.ctrl, CTRL.exited)) < workers.length; ) Atomics.wait(mem.ctrl, CTRL.exited, n, 100);
  mem.checkAbort(0);
  const busFactor = (2 * (size - 1)) / size;
  const rows = sizes.map((bytes, i) => ({ bytes, us: 1000 * ms[i]!, algGBps: bytes / (ms[i]! / 1000) / 1e9, busGBps: (busFactor * bytes) / (ms[i]! / 1000) / 1e9 }));
  console.log(`all-reduce (bf16, sum) through the NCCL binding over ${size} GPUs (${native.deviceInfo(0).name}), NCCL ${info.ncclVersion}, ${iters} back-to-back calls per size, CUDA events:`);
  console.log('       bytes      us/call   algbw GB/s   busbw GB/s');
  for (const r of rows) console.log(`${String(r.bytes).padStart(12)} ${r.us.toFixed(1).padStart(12)} ${r.algGBps.toFixed(1).padStart(12)} ${r.busGBps.toFixed(1).padStart(12)}`);
  const peak = Math.max(...rows.map((r) => r.busGBps));
  console.log(`bus bandwidth: ${peak.toFixed(1)} GB/s at its best size`);
  console.log(`Qwen3-${presetName} (hidden ${H}, ${cfg.numLayers} layers): ${perStep} all-reduces per step; their time per step at the step's message size:`);
  const perStepRows = stepTokens.map((t, i) => ({ tokens: t, bytes: sizes[i]!, msPerStep: (perStep * rows[i]!.us) / 1000, busGBps: rows[i]!.busGBps }));
  for (const r of perStepRows)
    console.log(`  ${String(r.tokens).padStart(6)} tokens (${(r.bytes / 1024).toFixed(0)} KiB a message): ${r.msPerStep.toFixed(3)} ms a step in all-reduces, at ${r.busGBps.toFixed(1)} GB/s bus bandwidth (${((100 * r.busGBps) / peak).toFixed(0)}% of the best)`);
  if (values.out) {
    writeFileSync(values.out, JSON.stringify({ kind: 'allreduce', date: new Date().toISOString(), gpus: size, card: native.deviceInfo(0).name, nccl: info.ncclVersion, dtype: 'bf16', iters, preset: presetName, allReducesPerStep: perStep, rows, perStep: perStepRows, peakBusGBps: peak }, null, 2) + '\n');
    console.log(`written ${values.out}`);
  }
}
