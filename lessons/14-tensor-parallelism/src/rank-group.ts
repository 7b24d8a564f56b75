// The ranks of a tensor-parallel engine: rank 0 is the thread that runs the
// engine (scheduler, sampler, the caller's loop); ranks 1..N-1 are worker
// threads of the same process, one per GPU (cuda:0..N-1) or, on the CPU, one per
// share of the model. Why threads and not processes: the ranks share memory, so
// the step plan and the CPU collectives need no serialization and no sockets
// (a SharedArrayBuffer and Atomics), and NCCL is happy with one communicator per
// thread; the README gives the measured costs of both.
//
// Start-up: rank 0 makes the shared memory (and, on GPUs, NCCL's unique id),
// starts the workers, joins the communicator; every rank then loads its slices
// of the weights, meets the others ('weights loaded'), sizes its KV pool
// and agrees on the smallest, and captures its graphs. From then on rank 0
// writes each step's plan and every rank runs the same forward.
import { Worker } from 'node:worker_threads';

import { type Device, deviceIndex, native } from '@aios/engine-core';
import type { DType } from '@aios/engine-core/dtype.ts';
import type { EngineContext, EngineOptions } from '@aios/engine-core/engine/types.ts';
import { type Collectives, localConfig, shardLayout } from '@aios/engine-core/model/shard.ts';

import { NcclCollectives, type RankCollectives, SharedMemoryCollectives } from './collectives.ts';
import { CTRL, GroupMemory, type GroupShape } from './group-memory.ts';
import { PlanWriter, planCapacity } from './plan-channel.ts';

export function envMs(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`${name} must be a positive number of milliseconds, got "${v}"`);
  return n;
}

/** How long a rank waits for the others at a collective or a step (AIOS_TP_TIMEOUT_MS). */
export const timeoutMs = (): number => envMs('AIOS_TP_TIMEOUT_MS', 300_000);
/** How long a rank waits for the others to load their weights (AIOS_TP_STARTUP_TIMEOUT_MS): a 32B shard takes minutes. */
export const startupTimeoutMs = (): number => envMs('AIOS_TP_STARTUP_TIMEOUT_MS', 1_800_000);

/**
 * How long a rank waits for the others at a start-up CUDA graph step (AIOS_TP_CAPTURE_TIMEOUT_MS):
 * the waits between captures and the replay check fail within this, not the step timeout.
 */
export const captureTimeoutMs = (): number => envMs('AIOS_TP_CAPTURE_TIMEOUT_MS', 60_000);

/** CPU collectives go through buffers of this size per rank; bigger tensors in chunks. */
const CPU_SLOT_BYTES = 4 * 2 ** 20;

/** A module that exports the recipe's BatchedParts: the worker threads import it to build the same model. */
export interface PartsRef {
  module: string;
  name: string;
}

/** What a worker thread is started with (structured-cloned: data only). */
export interface RankSpec {
  sab: SharedArrayBuffer;
  shape: GroupShape;
  rank: number;
  modelDir: string;
  device: Device;
  dtype: DType;
  options: EngineOptions;
  parts: PartsRef;
  ncclId?: Uint8Array;
  timeoutMs: number;
  /** The module the worker runs (rank-worker.ts), resolved by rank 0. */
  entry: string;
}

/** Rank r's device: the CPU, or the r-th GPU after the engine's. */
export function rankDevice(device: Device, rank: number, size: number): Device {
  if (device === 'cpu') return 'cpu';
  const first = deviceIndex(device), count = native.backendInfo().deviceCount;
  if (first + size > count) throw new RangeError(`tensor parallelism over ${size} GPUs from ${device} needs cuda:${first}..cuda:${first + size - 1}, but this machine has ${count} GPU(s)`);
  return `cuda:${first + rank}`;
}

/**
 * Starts a rank's worker thread: boot.mjs registers tsx and imports `workerData.entry` (a failed
 * import goes into the group's memory as rank `rank`'s failure). Unref'd: a stuck rank never
 * keeps the process alive.
 */
export function startRank<T extends { sab: SharedArrayBuffer; shape: GroupShape; rank: number; entry: string }>(workerData: T): Worker {
  const w = new Worker(new URL('./boot.mjs', import.meta.url), { workerData });
  w.unref();
  return w;
}

/** A rank's collectives: NCCL between GPUs (the addon must have been built with it), shared memory between CPU threads. */
export function collectivesFor(mem: GroupMemory, rank: number, device: Device, ncclId: Uint8Array | undefined, timeout: number): RankCollectives {
  if (device === 'cpu') return new SharedMemoryCollectives(mem, rank, timeout);
  if (!ncclId) throw new Error('tensor parallelism on GPUs: no NCCL id was handed to this rank');
  const comm = new native.NcclComm(deviceIndex(device), mem.size, rank, ncclId, timeout);
  const coll = new NcclCollectives(comm, rank, mem.size, mem, timeout);
  try {
    coll.usePeer(deviceIndex(device));
  } catch (e) {
    coll.dispose();
    throw e;
  }
  return coll;
}

/** The engine context of rank `rank`: its device, its local shape, its shard. */
export function shardContext(base: Omit<EngineContext, 'device' | 'shard'>, rank: number, size: number, device: Device, comm: Collectives): EngineContext {
  const layout = shardLayout(base.cfg, rank, size);
  return { ...base, cfg: localConfig(base.cfg, layout), device, shard: { layout, comm, full: base.cfg } };
}

export class RankGroup {
  readonly writer: PlanWriter;
  private stopped = false;

  private constructor(
    readonly mem: GroupMemory,
    private readonly workers: Worker[],
    /** Rank 0's collectives. */
    readonly comm: Collectives,
    /** Rank 0's engine context. */
    readonly ctx: EngineContext,
  ) {
    this.writer = new PlanWriter(mem);
  }

  /** Starts ranks 1..N-1 and joins rank 0 to them; `ctx` is the engine's (the whole model). */
  static start(ctx: EngineContext, parts: PartsRef): RankGroup {
    const size = ctx.options.tensorParallelSize;
    shardLayout(ctx.cfg, 0, size); // a shape that does not split is an error before any thread starts
    const devices = Array.from({ length: size }, (_, r) => rankDevice(ctx.device, r, size));
    const { maxNumBatchedTokens, maxNumSeqs, blockSize } = ctx.options;
    const shape: GroupShape = {
      size,
      planInts: planCapacity(maxNumBatchedTokens, maxNumSeqs, Math.ceil(ctx.cfg.maxPositionEmbeddings / blockSize)),
      slotBytes: ctx.device === 'cpu' ? CPU_SLOT_BYTES : 8,
    };
    const mem = GroupMemory.create(shape);
    const ncclId = ctx.device === 'cpu' ? undefined : native.ncclUniqueId();
    const timeout = timeoutMs();
    const entry = new URL('./rank-worker.ts', import.meta.url).href;
    const workers: Worker[] = [];
    try {
      for (let rank = 1; rank < size; rank++) {
        const spec: RankSpec = { sab: mem.sab, shape, rank, modelDir: ctx.modelDir, device: devices[rank]!, dtype: ctx.dtype, options: ctx.options, parts, timeoutMs: timeout, entry, ...(ncclId ? { ncclId } : {}) };
        workers.push(startRank(spec));
      }
      const comm = collectivesFor(mem, 0, devices[0]!, ncclId, timeout);
      return new RankGroup(mem, workers, comm, shardContext(ctx, 0, size, devices[0]!, comm));
    } catch (e) {
      mem.fail(0, `rank 0: ${e instanceof Error ? e.message : String(e)}`);
      for (const w of workers) void w.terminate();
      throw e;
    }
  }

  get size(): number {
    return this.mem.size;
  }

  /**
   * Tells the workers to finish, waits (bounded) until they have freed what they hold,
   * then ends their threads. After a failure the workers have already stopped.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const c = this.mem.ctrl;
    if (Atomics.load(c, CTRL.abort) === 0) this.writer.stop();
    // Rank 0 finalizes its communicator while the others finalize theirs (NCCL may wait for the peers).
    try {
      this.comm.dispose();
    } finally {
      this.mem.waitExited(this.workers.length, 30_000);
      for (const w of this.workers) void w.terminate();
    }
  }

  /** Marks the group failed (every waiting worker wakes up and stops) and stops it. */
  abort(reason: string): void {
    this.mem.fail(0, reason);
    this.stop();
  }
}
