// The all-reduce through our NCCL binding and through the one-shot peer all-reduce
// (PeerAllReduce, for messages up to its capacity), timed on the GPUs of this host: what a
// tensor-parallel step pays for its 2L + 1 all-reduces (two per decoder layer, one
// for the embedding), at the message sizes a step of a given model sends, and the
// bus bandwidth NCCL reaches at large sizes (nccl-tests' busbw: algbw x 2(n-1)/n
// for an all-reduce over n ranks). Host and device apart: the host's enqueue time
// per call (what an eager step pays on the CPU), and the device's time per call
// with the calls queued ahead of the device (what a graph replay pays).
//
//   tsx lessons/14-tensor-parallelism/src/allreduce-bench.ts [--tp N] [--preset 8B] [--iters 50] [--path both|nccl|peer] [--out FILE.json]
//
// Rank 0 is this thread, ranks 1..N-1 worker threads (one GPU each), as in the engine.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isMainThread, workerData } from 'node:worker_threads';

import { Tensor, native, synchronize } from '@aios/engine-core';
import { choiceFlag, intFlag } from '@aios/engine-core/cli/args.ts';
import { dtypeCode } from '@aios/engine-core/dtype.ts';
import { PRESETS, type PresetName } from '@aios/engine-core/model/config.ts';

import { type AllReducePath, NcclCollectives, peerMaxBytes } from './collectives.ts';
import { GroupMemory, type GroupShape } from './group-memory.ts';
import { startRank } from './rank-group.ts';

interface Spec {
  sab: SharedArrayBuffer;
  shape: GroupShape;
  rank: number;
  ncclId: Uint8Array;
  sizes: number[];
  iters: number;
  paths: AllReducePath[];
  entry: string;
}

const WARMUP = 5;
/** The all-reduce that keeps the device busy while the timed calls are queued behind it (~0.9 ms each on H200 NVLink). */
const BLOCKER_BYTES = 256 * 2 ** 20;
/** Blockers per size: enough device time to cover `iters` enqueues at up to 150 us each (the same count on every rank). */
const blockersFor = (iters: number) => Math.ceil((iters * 0.15) / 0.8) + 2;

/** One size's times, microseconds per call. */
interface Timing {
  path: AllReducePath;
  bytes: number;
  /** Host time to enqueue one all-reduce (the binding's call, NCCL's enqueue), back to back. */
  hostUs: number;
  /** Device time per all-reduce with the calls queued ahead (behind blockers): the host is out of the way. */
  deviceUs: number;
  /** Whether the host had queued every timed call before the device reached them (else deviceUs includes idle time). */
  queuedAhead: boolean;
  /** CUDA events around back-to-back calls: the larger of host and device time per call. */
  backToBackUs: number;
}

/**
 * Every rank: for each path and size, meet, then the same all-reduces of `bytes` bf16 bytes:
 * WARMUP, then `iters` back to back (rank 0 times the host's enqueue and the events
 * around them), then blockers and `iters` more queued behind them (rank 0 times the
 * device alone: the host finished queueing while the device was still in the blockers).
 * The peer path runs the sizes that fit its staging buffer; the blockers always go through NCCL.
 */
function runRank(spec: Spec, mem: GroupMemory): Timing[] {
  const device = `cuda:${spec.rank}` as const;
  const comm = new NcclCollectives(new native.NcclComm(spec.rank, spec.shape.size, spec.rank, spec.ncclId, 120_000), spec.rank, spec.shape.size, mem, 120_000);
  const times: Timing[] = [];
  try {
    comm.usePeer(spec.rank, 'nccl');
    const largest = Math.max(...spec.sizes, BLOCKER_BYTES);
    const buf = Tensor.full([largest / 2], 1, { dtype: 'bf16', device });
    // Rank 0's marks: back to back [0] -> [1]; blockers [2] -> [3]; the queued-ahead calls [3] -> [4].
    const ev = spec.rank === 0 ? [0, 1, 2, 3, 4].map(() => new native.Event(spec.rank)) : undefined;
    const blocker = buf.narrow(0, 0, BLOCKER_BYTES / 2);
    const blockers = blockersFor(spec.iters);
    for (const path of spec.paths) {
      if (path !== 'nccl') comm.usePeer(spec.rank, path); // every rank at the same point: a collective
      for (const bytes of spec.sizes) {
        if (path !== 'nccl' && bytes > peerMaxBytes()) continue;
        const x = buf.narrow(0, 0, bytes / 2);
        const allReduce = path !== 'nccl' ? () => comm.allReducePeer(x) : () => comm.allReduceNccl(x);
        synchronize(device);
        mem.barrier(spec.rank, `${path} size ${bytes}`, 120_000);
        for (let i = 0; i < WARMUP; i++) allReduce();
        comm.wait();
        mem.barrier(spec.rank, `${path} size ${bytes} back to back`, 120_000);
        // Back to back: the host's enqueue time, and the events around the calls.
        ev?.[0]!.record();
        const h0 = performance.now();
        for (let i = 0; i < spec.iters; i++) allReduce();
        const hostMs = performance.now() - h0;
        ev?.[1]!.record();
        comm.wait();
        mem.barrier(spec.rank, `${path} size ${bytes} queued ahead`, 120_000);
        // Queued ahead: blockers first, the timed calls behind them.
        const q0 = performance.now();
        ev?.[2]!.record();
        for (let i = 0; i < blockers; i++) comm.allReduceNccl(blocker);
        ev?.[3]!.record();
        for (let i = 0; i < spec.iters; i++) allReduce();
        const queuedMs = performance.now() - q0;
        ev?.[4]!.record();
        comm.wait();
        if (ev)
          times.push({
            path,
            bytes,
            hostUs: (1000 * hostMs) / spec.iters,
            deviceUs: (1000 * ev[3]!.elapsedMs(ev[4]!)) / spec.iters,
            // The device started the blockers no earlier than q0 and was busy with them for their time.
            queuedAhead: queuedMs < ev[2]!.elapsedMs(ev[3]!),
            backToBackUs: (1000 * ev[0]!.elapsedMs(ev[1]!)) / spec.iters,
          });
      }
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
    mem.exit();
  }
} else if (isMainThread) {
  const { values } = parseArgs({ options: { tp: { type: 'string' }, preset: { type: 'string' }, iters: { type: 'string' }, path: { type: 'string' }, out: { type: 'string' } } });
  const info = native.backendInfo();
  if (!info.cudaUsable || !info.nccl) throw new Error(`allreduce-bench needs CUDA and an addon built with NCCL (cudaUsable ${info.cudaUsable}, nccl ${info.nccl})`);
  if (info.deviceCount < 2) throw new Error(`allreduce-bench needs at least 2 GPUs, this host has ${info.deviceCount}`);
  const size = intFlag('tp', values.tp, { min: 2, max: info.deviceCount }) ?? info.deviceCount;
  const presetName = choiceFlag('preset', values.preset, Object.keys(PRESETS) as PresetName[]) ?? '8B';
  const named: Record<'both' | 'nccl' | 'peer', AllReducePath[]> = { both: ['nccl', 'peer'], nccl: ['nccl'], peer: ['peer'] };
  const paths = named[choiceFlag('path', values.path, ['both', 'nccl', 'peer'] as const) ?? 'both'];
  const cfg = PRESETS[presetName];
  const iters = intFlag('iters', values.iters) ?? 50;
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
    const spec: Spec = { sab: mem.sab, shape, rank: i + 1, ncclId, sizes, iters, paths, entry };
    return startRank(spec);
  });
  const timing = runRank({ sab: mem.sab, shape, rank: 0, ncclId, sizes, iters, paths, entry }, mem);
  mem.waitExited(workers.length);
  mem.checkAbort(0);
  const busFactor = (2 * (size - 1)) / size;
  const gbps = (bytes: number, us: number) => bytes / (us / 1e6) / 1e9;
  const rows = timing.map((t) => ({ path: t.path, bytes: t.bytes, hostUs: t.hostUs, deviceUs: t.deviceUs, queuedAhead: t.queuedAhead, us: t.backToBackUs, algGBps: gbps(t.bytes, t.deviceUs), busGBps: busFactor * gbps(t.bytes, t.deviceUs) }));
  console.log(`all-reduce (bf16, sum) over ${size} GPUs (${native.deviceInfo(0).name}), NCCL ${info.ncclVersion} and the one-shot peer all-reduce (up to ${peerMaxBytes()} bytes), ${iters} calls per size:`);
  console.log('  host us/call: the host enqueueing one call (the binding + NCCL or the peer kernel), back to back, performance.now()');
  console.log(`  device us/call: CUDA events around ${iters} calls queued behind ${blockersFor(iters)} 256 MiB NCCL all-reduces, so the host is out of the way ("no" in queued: the host was not done in time, the figure includes idle time)`);
  console.log('  back-to-back us/call: CUDA events around calls enqueued back to back (the larger of the two above); bus bandwidth from the device time');
  console.log(' path            bytes   host us/call device us/call queued  back-to-back us/call   algbw GB/s   busbw GB/s');
  for (const r of rows)
    console.log(`${r.path.padEnd(9)} ${String(r.bytes).padStart(12)} ${r.hostUs.toFixed(1).padStart(14)} ${r.deviceUs.toFixed(1).padStart(14)} ${(r.queuedAhead ? 'yes' : 'no').padStart(6)} ${r.us.toFixed(1).padStart(21)} ${r.algGBps.toFixed(1).padStart(12)} ${r.busGBps.toFixed(1).padStart(12)}`);
  const peak = Math.max(...rows.filter((r) => r.path === 'nccl').map((r) => r.busGBps), 0);
  if (peak > 0) console.log(`NCCL's bus bandwidth: ${peak.toFixed(1)} GB/s at its best size (device time)`);
  console.log(`Qwen3-${presetName} (hidden ${H}, ${cfg.numLayers} layers): ${perStep} all-reduces per step; per step at the step's message size:`);
  const perStepRows = paths.flatMap((path) =>
    stepTokens.flatMap((tokens) => {
      const r = rows.find((x) => x.path === path && x.bytes === tokens * H * 2);
      return r ? [{ path, tokens, bytes: r.bytes, msPerStep: (perStep * r.deviceUs) / 1000, hostMsPerStep: (perStep * r.hostUs) / 1000, busGBps: r.busGBps }] : [];
    }),
  );
  for (const r of perStepRows)
    console.log(`  ${r.path.padEnd(9)} ${String(r.tokens).padStart(6)} tokens (${(r.bytes / 1024).toFixed(0)} KiB a message): ${r.msPerStep.toFixed(3)} ms of device time (${r.busGBps.toFixed(1)} GB/s bus${peak > 0 ? `, ${((100 * r.busGBps) / peak).toFixed(0)}% of NCCL's best` : ''}), ${r.hostMsPerStep.toFixed(3)} ms of host enqueue (an eager step pays it; a graph replay does not)`);
  if (values.out) {
    writeFileSync(values.out, JSON.stringify({ kind: 'allreduce', date: new Date().toISOString(), gpus: size, card: native.deviceInfo(0).name, nccl: info.ncclVersion, peerMaxBytes: peerMaxBytes(), dtype: 'bf16', iters, preset: presetName, paths, allReducesPerStep: perStep, blockers: blockersFor(iters), rows, perStep: perStepRows, peakBusGBps: peak }, null, 2) + '\n');
    console.log(`written ${values.out}`);
  }
}
