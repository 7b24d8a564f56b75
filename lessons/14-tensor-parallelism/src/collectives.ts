// The two ways ranks combine tensors (engine-core's Collectives):
//
//   SharedMemoryCollectives   CPU ranks (threads of one process): each rank copies its part
//                             into its slot of the shared buffer; the ranks meet at a barrier;
//                             each sums (or copies) and meets again. What NCCL does on GPUs, in
//                             plain loops, so the sharding runs in every CI run.
//   NcclCollectives           GPU ranks: the addon's NCCL communicator, on each rank's stream;
//                             a decode step's small all-reduces go through the addon's one-shot
//                             peer all-reduce instead (PeerAllReduce: the GPUs read each other's
//                             staging buffers over NVLink), where every pair of GPUs has peer access.
//
// An all-reduce sums in rank order on every rank, so every rank ends with the
// same bits: the replicated activations (the residual stream) never drift apart.
import { Tensor, native } from '@aios/engine-core';
import { type DType, dtypeCode } from '@aios/engine-core/dtype.ts';
import { envChoice } from '@aios/engine-core/env.ts';
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
  /**
   * The all-reduce of x [rows, dim] fused with lesson 10's addRmsnorm, where the collectives have
   * it and take the shape (NcclCollectives' peer path); false (nothing done) otherwise.
   */
  allReduceAddRmsnorm?(x: Tensor, residual: Tensor, weight: Tensor, eps: number, out: Tensor): boolean;
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

/** How a GPU group's all-reduces travel: AIOS_TP_ALLREDUCE=peer (the default where possible) or nccl. */
export type AllReducePath = 'peer' | 'nccl';

function allReducePathFromEnv(): AllReducePath {
  return envChoice<AllReducePath>('AIOS_TP_ALLREDUCE', ['peer', 'nccl']);
}

/**
 * The largest all-reduce the peer path takes (AIOS_TP_PEER_MAX_BYTES, default 8 MiB): a decode
 * step's messages (256 tokens x 5120 x 2 bytes = 2.5 MiB for the largest Qwen3); prefill chunks
 * (up to 16,384 tokens: 128 MiB) go through NCCL, whose ring moves large messages at bus bandwidth.
 */
export function peerMaxBytes(): number {
  const v = process.env.AIOS_TP_PEER_MAX_BYTES;
  if (v === undefined) return 8 * 2 ** 20;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 16 || n % 16 !== 0) throw new Error(`AIOS_TP_PEER_MAX_BYTES must be a positive multiple of 16, got "${v}"`);
  return n;
}

const PEER_DTYPES: ReadonlySet<DType> = new Set(['bf16', 'f16', 'f32']);

/**
 * Rank `rank`'s peer all-reduce, connected to every other rank's, or the reason there is none.
 * A collective: every rank calls it at the same point. The ranks hand each other their device
 * and addresses through an NCCL all-gather, and vote on the outcome, so they all use the peer
 * path or all keep NCCL's (different paths on different ranks would never meet).
 */
function connectPeerAllReduce(coll: NcclCollectives, device: number, capacityBytes: number): { peer?: InstanceType<typeof native.PeerAllReduce>; why?: string } {
  const { rank, size } = coll;
  let peer: InstanceType<typeof native.PeerAllReduce> | undefined;
  let mine: string | undefined;
  const W = 6; // [ok, device, staging lo, hi, flags lo, hi]
  const words = new Int32Array(W);
  try {
    peer = new native.PeerAllReduce(device, rank, size, capacityBytes, coll.timeoutMs);
    const [staging, flags] = peer.addresses();
    words.set([1, device, Number(staging! & 0xffffffffn) | 0, Number(staging! >> 32n) | 0, Number(flags! & 0xffffffffn) | 0, Number(flags! >> 32n) | 0]);
  } catch (e) {
    mine = `rank ${rank}: ${e instanceof Error ? e.message : String(e)}`;
  }
  const dev = `cuda:${device}` as const;
  const local = Tensor.fromArray(words, [W], { dtype: 'i32', device: dev });
  const all = Tensor.empty([W * size], { dtype: 'i32', device: dev });
  let got: number[];
  try {
    coll.allGather(local, all);
    got = all.toNumbers();
  } finally {
    local.dispose();
    all.dispose();
  }
  const u64 = (lo: number, hi: number) => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  const devices = Int32Array.from({ length: size }, (_, r) => got[W * r + 1]!);
  if (mine === undefined && peer) {
    const missing = Array.from({ length: size }, (_, r) => r).filter((r) => got[W * r] !== 1);
    if (missing.length > 0) mine = `rank(s) ${missing.join(', ')} could not set up theirs`;
    else {
      const blocked = Array.from(devices).filter((d) => d !== device && !native.canAccessPeer(device, d));
      if (blocked.length > 0) mine = `cuda:${device} has no peer access to cuda:${blocked.join(', cuda:')}`;
      else
        try {
          peer.connect(devices, BigUint64Array.from({ length: size }, (_, r) => u64(got[W * r + 2]!, got[W * r + 3]!)), BigUint64Array.from({ length: size }, (_, r) => u64(got[W * r + 4]!, got[W * r + 5]!)));
        } catch (e) {
          mine = `rank ${rank}: ${e instanceof Error ? e.message : String(e)}`;
        }
    }
  }
  const vote = coll.agree(mine === undefined, 'the peer all-reduce');
  if (vote.ok) return { peer };
  peer?.dispose();
  return { why: mine ?? `rank ${vote.refusedBy} could not connect its peer all-reduce` };
}

export class NcclCollectives implements RankCollectives {
  private votes = 0;
  private peer?: InstanceType<typeof native.PeerAllReduce>;
  /** Why the peer all-reduce is not used (undefined when it is). */
  private peerWhy?: string = 'not set up';

  constructor(
    private readonly comm: InstanceType<typeof native.NcclComm>,
    readonly rank: number,
    readonly size: number,
    private readonly mem: GroupMemory,
    readonly timeoutMs: number,
  ) {}

  /** Sets up the peer path for small all-reduces (a collective: every rank at once), unless `path` is nccl. */
  usePeer(device: number, path: AllReducePath = allReducePathFromEnv(), capacityBytes = peerMaxBytes()): void {
    // A second set-up replaces the first. The old staging buffer is freed only once every rank's
    // stream is drained: a peer's last all-reduce may still be reading it after this rank's kernel
    // ended.
    if (this.peer) {
      this.wait(); // this rank's stream, and the old kernels' error word
      this.barrier('the peer all-reduce replaced (every stream drained)');
      this.peer.dispose();
      this.peer = undefined;
    }
    if (path === 'nccl') {
      this.peerWhy = 'AIOS_TP_ALLREDUCE=nccl';
      return;
    }
    const { peer, why } = connectPeerAllReduce(this, device, capacityBytes);
    this.peer = peer;
    this.peerWhy = why;
  }

  /** The peer all-reduce when this message goes through it: the same answer on every rank (bytes and dtype only). */
  private peerFor(x: Tensor, bytes: number): InstanceType<typeof native.PeerAllReduce> | undefined {
    const p = this.peer;
    return p && bytes <= p.capacity && bytes % 16 === 0 && x.byteOffset % 16 === 0 && PEER_DTYPES.has(x.dtype) ? p : undefined;
  }

  allReduce(x: Tensor): void {
    const peer = this.peerFor(x, bytesOf(x, 'allReduce'));
    if (peer) peer.allReduce(dtypeCode(x.dtype), x.numel, x.storage, x.byteOffset);
    else this.ncclSum(x);
  }

  /** NCCL's all-reduce of x in place (x checked by the caller). */
  private ncclSum(x: Tensor): void {
    this.comm.allReduce(dtypeCode(x.dtype), x.numel, x.storage, x.byteOffset, x.storage, x.byteOffset);
  }

  /**
   * The all-reduce of x [rows, dim] fused with lesson 10's addRmsnorm (residual += the sum; out =
   * RMSNorm(residual) * weight; x is left as it was) when the peer path takes the shape; false
   * (nothing done) otherwise, and the caller runs allReduce then addRmsnorm. The same answer on
   * every rank (shape and dtype only).
   */
  allReduceAddRmsnorm(x: Tensor, residual: Tensor, weight: Tensor, eps: number, out: Tensor): boolean {
    const p = this.peer;
    if (!p || x.ndim !== 2) return false;
    const [rows, dim] = x.shape as [number, number];
    if (!p.fitsAddRmsnorm(rows, dim, dtypeCode(x.dtype))) return false;
    for (const [name, t] of [['x', x], ['residual', residual], ['out', out]] as const)
      if (!t.isContiguous() || t.dtype !== x.dtype || t.shape[0] !== rows || t.shape[1] !== dim) throw new Error(`allReduceAddRmsnorm: ${name} must be a contiguous [${rows}, ${dim}] ${x.dtype} tensor, got ${t}`);
    if (weight.numel !== dim || weight.dtype !== x.dtype) throw new Error(`allReduceAddRmsnorm: weight must hold ${dim} ${x.dtype} values, got ${weight}`);
    p.allReduceAddRmsnorm(dtypeCode(x.dtype), rows, dim, eps, x.storage, x.byteOffset, residual.storage, residual.byteOffset, weight.storage, weight.byteOffset, out.storage, out.byteOffset);
    return true;
  }

  /** NCCL's all-reduce whatever the size (the all-reduce bench compares the two paths). */
  allReduceNccl(x: Tensor): void {
    bytesOf(x, 'allReduce');
    this.ncclSum(x);
  }

  /** The peer path's all-reduce, or an error saying why there is none (the bench). */
  allReducePeer(x: Tensor): void {
    const bytes = bytesOf(x, 'allReduce');
    if (!this.peerFor(x, bytes)) throw new Error(`allReducePeer: ${this.peer ? `${bytes} bytes of ${x.dtype} do not fit the peer path (at most ${this.peer.capacity} bytes, whole 16-byte vectors)` : `no peer all-reduce (${this.peerWhy})`}`);
    this.allReduce(x);
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

  /**
   * The stream's work done, polling with the communicator's timeout, or `timeoutMs`; then
   * whether a peer all-reduce gave up waiting for a peer (its kernels cannot throw).
   */
  wait(timeoutMs?: number): void {
    this.comm.wait(timeoutMs);
    this.peer?.check();
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
    const nccl = `NCCL ${native.backendInfo().ncclVersion ?? ''} between ${this.size} GPUs, on each rank's stream`;
    return this.peer
      ? `collectives: ${nccl}; all-reduces up to ${(this.peer.capacity / 2 ** 20).toFixed(0)} MiB one-shot over peer access (the GPUs read each other's staging buffers)`
      : `collectives: ${nccl} (no peer all-reduce: ${this.peerWhy})`;
  }

  /** The peer path's buffers first (the graphs that captured its kernels are gone by now), then NCCL's. */
  dispose(): void {
    try {
      this.peer?.dispose();
      this.peer = undefined;
    } finally {
      this.comm.dispose();
    }
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
