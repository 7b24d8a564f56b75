// The two ways ranks combine tensors (engine-core's Collectives):
//
//   SharedMemoryCollectives   CPU ranks (threads of one process): each rank copies its part
//                             into its slot of the shared buffer; the ranks meet at a barrier;
//                             each sums (or copies) and meets again. What NCCL does on GPUs, in
//                             plain loops, so the sharding runs in every CI run.
//   NcclCollectives           GPU ranks: the addon's NCCL communicator, on each rank's stream.
//
// An all-reduce sums in rank order on every rank, so every rank ends with the
// same bits: the replicated activations (the residual stream) never drift apart.
import { Tensor, native } from '@aios/engine-core';
import { type DType, dtypeCode } from '@aios/engine-core/dtype.ts';
import type { Collectives } from '@aios/engine-core/model/shard.ts';

import type { GroupMemory } from './group-memory.ts';

/**
 * What lesson 14's ranks need of their collectives beyond engine-core's: a wait with
 * a shorter bound (start-up checks fail fast) and a vote (every rank keeps its CUDA
 * graphs only if every rank captured).
 */
export interface RankCollectives extends Collectives {
  wait(timeoutMs?: number): void;
  /** True only if every rank passed ok = true; which rank refused, if one did. */
  agree(ok: boolean, what: string, timeoutMs?: number): { ok: boolean; refusedBy?: number };
}

export function isRankCollectives(c: Collectives): c is RankCollectives {
  return typeof (c as Partial<RankCollectives>).agree === 'function';
}

function bytesOf(t: Tensor, what: string): number {
  if (!t.isContiguous()) throw new Error(`${what}: the tensor must be contiguous, got strides [${t.strides.join(', ')}]`);
  return t.numel * t.itemSize;
}

// bf16 <-> f32 on the host, as the native kernels round (to nearest, ties to even).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}
function f32ToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return (x >>> 16) | 0x40; // NaN stays NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Sums elements [lo, hi) of every rank's slot, in rank order, into the result area. */
function sumInto(mem: GroupMemory, dtype: DType, lo: number, hi: number): void {
  if (dtype === 'f32') {
    const out = new Float32Array(mem.result.buffer, mem.result.byteOffset, hi);
    const ins = mem.slots.map((s) => new Float32Array(s.buffer, s.byteOffset, hi));
    for (let i = lo; i < hi; i++) {
      let acc = 0;
      for (const a of ins) acc = Math.fround(acc + a[i]!);
      out[i] = acc;
    }
  } else if (dtype === 'bf16') {
    const out = new Uint16Array(mem.result.buffer, mem.result.byteOffset, hi);
    const ins = mem.slots.map((s) => new Uint16Array(s.buffer, s.byteOffset, hi));
    for (let i = lo; i < hi; i++) {
      let acc = 0;
      for (const a of ins) acc = Math.fround(acc + bf16ToF32(a[i]!));
      out[i] = f32ToBf16(acc);
    }
  } else throw new Error(`allReduce on the CPU: ${dtype} is not supported (f32 and bf16 are)`);
}

export class SharedMemoryCollectives implements RankCollectives {
  readonly size: number;
  private readonly slotBytes: number;
  private votes = 0;

  constructor(
    private readonly mem: GroupMemory,
    readonly rank: number,
    /** How long a rank waits for the others at any one meeting. */
    private readonly timeoutMs: number,
  ) {
    this.size = mem.size;
    this.slotBytes = mem.shape.slotBytes;
    if (this.slotBytes < 8) throw new Error('SharedMemoryCollectives: the group was made without collective buffers');
  }

  private meet(what: string): void {
    this.mem.barrier(this.rank, what, this.timeoutMs);
  }

  allReduce(x: Tensor): void {
    if (x.device !== 'cpu') throw new Error(`SharedMemoryCollectives.allReduce: ${x.device} tensors go through NCCL`);
    const total = bytesOf(x, 'allReduce'), item = x.itemSize;
    const chunk = this.slotBytes - (this.slotBytes % item);
    const mine = this.mem.slots[this.rank]!;
    for (let at = 0; at < total; at += chunk) {
      const n = Math.min(chunk, total - at), elems = n / item;
      x.storage.copyToHost(mine.subarray(0, n), x.byteOffset + at);
      this.meet('allReduce (parts written)');
      // Each rank sums its share of the elements (a reduce-scatter), into the common result.
      const per = Math.ceil(elems / this.size);
      const lo = Math.min(elems, this.rank * per), hi = Math.min(elems, lo + per);
      sumInto(this.mem, x.dtype, lo, hi);
      this.meet('allReduce (sums written)');
      x.storage.copyFromHost(this.mem.result.subarray(0, n), x.byteOffset + at);
    }
    if (total === 0) this.meet('allReduce (empty)');
  }

  allGather(input: Tensor, out: Tensor): void {
    const bytes = bytesOf(input, 'allGather');
    if (bytesOf(out, 'allGather') !== bytes * this.size) throw new Error(`allGather: out holds ${out.numel} elements, not ${this.size} x ${input.numel}`);
    if (out.dtype !== input.dtype) throw new Error(`allGather: out is ${out.dtype}, input ${input.dtype}`);
    const mine = this.mem.slots[this.rank]!;
    for (let at = 0; at < Math.max(bytes, 1); at += this.slotBytes) {
      const n = Math.min(this.slotBytes, bytes - at);
      if (n > 0) input.storage.copyToHost(mine.subarray(0, n), input.byteOffset + at);
      this.meet('allGather (parts written)');
      if (n > 0) this.mem.slots.forEach((slot, r) => out.storage.copyFromHost(slot.subarray(0, n), out.byteOffset + r * bytes + at));
      this.meet('allGather (parts read)');
    }
  }

  broadcast(x: Tensor, root: number): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.size) throw new Error(`broadcast: root ${root} is not a rank of ${this.size}`);
    const bytes = bytesOf(x, 'broadcast');
    const from = this.mem.slots[root]!;
    for (let at = 0; at < Math.max(bytes, 1); at += this.slotBytes) {
      const n = Math.min(this.slotBytes, bytes - at);
      if (n > 0 && this.rank === root) x.storage.copyToHost(from.subarray(0, n), x.byteOffset + at);
      this.meet('broadcast (root written)');
      if (n > 0 && this.rank !== root) x.storage.copyFromHost(from.subarray(0, n), x.byteOffset + at);
      this.meet('broadcast (read)');
    }
  }

  /** Nothing is queued: every collective above is done when it returns. */
  wait(_timeoutMs?: number): void {}

  agree(ok: boolean, what: string, timeoutMs = this.timeoutMs): { ok: boolean; refusedBy?: number } {
    return this.mem.agree(this.rank, ++this.votes, ok, what, timeoutMs);
  }

  barrier(what: string, timeoutMs = this.timeoutMs): void {
    this.mem.barrier(this.rank, what, timeoutMs);
  }

  describe(): string {
    return `collectives: shared memory between ${this.size} threads (${(this.slotBytes / 2 ** 20).toFixed(0)} MiB a rank), an all-reduce is 2 barriers per chunk`;
  }

  dispose(): void {}
}

export class NcclCollectives implements RankCollectives {
  private votes = 0;
  constructor(
    private readonly comm: InstanceType<typeof native.NcclComm>,
    readonly rank: number,
    readonly size: number,
    private readonly mem: GroupMemory,
    private readonly timeoutMs: number,
  ) {}

  allReduce(x: Tensor): void {
    bytesOf(x, 'allReduce');
    this.comm.allReduce(dtypeCode(x.dtype), x.numel, x.storage, x.byteOffset, x.storage, x.byteOffset);
  }

  allGather(input: Tensor, out: Tensor): void {
    bytesOf(input, 'allGather');
    if (bytesOf(out, 'allGather') !== input.numel * input.itemSize * this.size || out.dtype !== input.dtype)
      throw new Error(`allGather: out must hold ${this.size} x ${input.numel} ${input.dtype} elements, got ${out.numel} ${out.dtype}`);
    this.comm.allGather(dtypeCode(input.dtype), input.numel, this.size, input.storage, input.byteOffset, out.storage, out.byteOffset);
  }

  broadcast(x: Tensor, root: number): void {
    bytesOf(x, 'broadcast');
    this.comm.broadcast(dtypeCode(x.dtype), x.numel, root, x.storage, x.byteOffset, x.storage, x.byteOffset);
  }

  /** The stream's work done, polling with the communicator's timeout, or `timeoutMs`. */
  wait(timeoutMs?: number): void {
    this.comm.wait(timeoutMs);
  }

  /** A vote through the ranks' shared memory (host values: no device round trip). */
  agree(ok: boolean, what: string, timeoutMs = this.timeoutMs): { ok: boolean; refusedBy?: number } {
    return this.mem.agree(this.rank, ++this.votes, ok, what, timeoutMs);
  }

  /** A host-side meeting (start-up): the ranks' threads share memory whatever carries the tensors. */
  barrier(what: string, timeoutMs = this.timeoutMs): void {
    this.mem.barrier(this.rank, what, timeoutMs);
  }

  describe(): string {
    return `collectives: NCCL ${native.backendInfo().ncclVersion ?? ''} between ${this.size} GPUs, on each rank's stream`;
  }

  dispose(): void {
    this.comm.dispose();
  }
}

/** The smallest of every rank's `n` (the KV pool's block count, which must be the same everywhere). */
export function agreeOnMin(comm: Collectives, n: number, device: Tensor['device']): number {
  const mine = Tensor.fromArray(Int32Array.of(n), [1], { dtype: 'i32', device });
  const all = Tensor.empty([comm.size], { dtype: 'i32', device });
  try {
    comm.allGather(mine, all);
    return Math.min(...all.toNumbers());
  } finally {
    mine.dispose();
    all.dispose();
  }
}
