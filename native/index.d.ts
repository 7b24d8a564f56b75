// The raw binding. Lesson code never sees this: engine-core's Tensor and ops
// wrap it. Every op takes its scalars, then (storage, byteOffset) pairs.

/** A block of bytes on one device (-1 = host). */
export declare class Storage {
  constructor(nbytes: number, device: number);
  readonly nbytes: number;
  readonly device: number;
  readonly disposed: boolean;
  dispose(): void;
  copyFromHost(src: ArrayBufferView, dstByteOffset: number): void;
  copyToHost(dst: ArrayBufferView, srcByteOffset: number): void;
  copyToHostAsync(dst: ArrayBufferView, srcByteOffset: number): Promise<void>;
}

/** A CUDA event on a device's stream. */
export declare class Event {
  constructor(device: number);
  record(): this;
  synchronize(): void;
  /** Milliseconds of device time from this event to `end` (waits for `end`). */
  elapsedMs(end: Event): number;
}

/** An executable CUDA graph (lesson 11): made by graphEnd, replayed on its device's stream by launch(). */
export declare class Graph {
  launch(): void;
  dispose(): void;
  readonly disposed: boolean;
}
/** Starts recording the device's stream (thread-local capture): ops queue into the graph instead of running. */
export declare function graphBegin(device: number): void;
/** Ends the recording and instantiates it. */
export declare function graphEnd(device: number): Graph;
/** Ends a failed recording, if one is open, so the stream runs normally again. */
export declare function graphAbort(device: number): void;

export interface BackendInfo {
  cudaCompiled: boolean;
  cublas: boolean;
  cudaUsable: boolean;
  /** Whether the NCCL communicator was built (lesson 14), and NCCL's version. */
  nccl: boolean;
  ncclVersion?: string;
  deviceCount: number;
  driverVersion?: number;
  runtimeVersion?: number;
  cudaArchitectures?: string;
}
export interface DeviceInfo {
  name: string;
  computeCapability: string;
  smCount: number;
  totalMemory: number;
  freeMemory: number;
  l2Bytes: number;
  sharedPerBlockOptin: number;
  memoryBusBits: number;
  memoryClockKHz: number;
}
export interface AllocatorStats {
  rawAllocs: number;
  rawFrees: number;
  requests: number;
  cacheHits: number;
  bytesReserved: number;
  bytesInUse: number;
  peakBytesInUse: number;
}

type S = Storage;
type O = number;

export declare const path: string;
export declare function backendInfo(): BackendInfo;
export declare function deviceInfo(device: number): DeviceInfo;
export declare function memGetInfo(device: number): { free: number; total: number };
export declare function synchronize(device: number): void;
export declare function synchronizeAsync(device: number): Promise<void>;
export declare function allocatorStats(device: number): AllocatorStats;
export declare function emptyCache(device: number): void;
export declare function resetPeakStats(device: number): void;
export declare function streamHandle(device: number): bigint;
/** Host microseconds per empty-kernel launch, `n` launches from C++ (CUDA devices only). */
export declare function launchOverheadUs(device: number, n: number): number;

/** Starts (true) or stops (false) the CUDA profiler's capture; a no-op without CUDA. */
export declare function profiler(on: boolean): void;

export declare function fill(dtype: number, n: number, value: number, out: S, outOff: O): void;
/** Arguments: rank, shape x rank, srcDtype, srcStrides x rank, src, srcOff, dstDtype, dstStrides x rank, dst, dstOff. */
export declare function copyStrided(rank: number, ...rest: (number | S)[]): void;
export declare function embedding(dtype: number, idDtype: number, nIds: number, vocab: number, dim: number,
  table: S, tableOff: O, ids: S, idsOff: O, out: S, outOff: O): void;
export declare function matmulNT(inDtype: number, outDtype: number, M: number, N: number, K: number,
  x: S, xOff: O, w: S, wOff: O, out: S, outOff: O): void;
export declare function rmsnorm(dtype: number, rows: number, dim: number, eps: number,
  x: S, xOff: O, weight: S, weightOff: O, out: S, outOff: O): void;
export declare function ropeNeox(dtype: number, tokens: number, heads: number, headDim: number, maxPos: number,
  x: S, xOff: O, out: S, outOff: O, positions: S, posOff: O, cos: S, cosOff: O, sin: S, sinOff: O): void;
export declare function silu(dtype: number, n: number, x: S, xOff: O, out: S, outOff: O): void;
export declare function add(dtype: number, n: number, a: S, aOff: O, b: S, bOff: O, out: S, outOff: O): void;
export declare function mul(dtype: number, n: number, a: S, aOff: O, b: S, bOff: O, out: S, outOff: O): void;
export declare function softmax(dtype: number, rows: number, n: number, x: S, xOff: O, out: S, outOff: O): void;
/** k and v hold kvRows rows; with the optional final (kvSlots, offset) pair, key j is row kvSlots[j], else row j (kvRows == kvLen). */
export declare function attention(dtype: number, qLen: number, kvLen: number, qHeads: number, kvHeads: number,
  headDim: number, scale: number, causal: boolean, kvRows: number, q: S, qOff: O, k: S, kOff: O, v: S, vOff: O,
  out: S, outOff: O, scores: S, scoresOff: O, kvSlots?: S, kvSlotsOff?: O): void;
/** Attention of a packed step over a paged pool (aios.h PagedAttentionArgs); the metadata is i32; seqOrder (undefined: none) only orders decode v3's blocks. */
export declare function pagedAttention(dtype: number, numSeqs: number, numTokens: number, qHeads: number, kvHeads: number,
  headDim: number, blockSize: number, maxBlocksPerSeq: number, numSlots: number, maxQLen: number, maxContextLen: number,
  scale: number, q: S, qOff: O, kCache: S, kOff: O, vCache: S, vOff: O, out: S, outOff: O,
  cuSeqlensQ: S, cuOff: O, contextLens: S, ctxOff: O, blockTables: S, btOff: O, seqOrder: S | undefined, seqOrderOff: O): void;
/**
 * Lesson 09's FlashAttention prefill kernel `version` (1 scalar tiled, 2-5 tensor cores) on CUDA buffers,
 * the CPU reference on host buffers; the other arguments are pagedAttention's.
 */
export declare function flashPrefill(version: number, dtype: number, numSeqs: number, numTokens: number, qHeads: number,
  kvHeads: number, headDim: number, blockSize: number, maxBlocksPerSeq: number, numSlots: number, maxQLen: number,
  maxContextLen: number, scale: number, q: S, qOff: O, kCache: S, kOff: O, vCache: S, vOff: O, out: S, outOff: O,
  cuSeqlensQ: S, cuOff: O, contextLens: S, ctxOff: O, blockTables: S, btOff: O, seqOrder: S | undefined, seqOrderOff: O): void;
/**
 * Lesson 09's decode kernel `version` (1 scalar, 2 split-KV, 3 split-KV on tensor cores) with `splits`
 * blocks per (sequence, KV head) (0: automatic); a launch with more than one split needs the trailing
 * workspace of flashDecodePlan's workspaceBytes. The CPU reference on host buffers.
 */
export declare function flashDecode(version: number, splits: number, dtype: number, numSeqs: number, numTokens: number,
  qHeads: number, kvHeads: number, headDim: number, blockSize: number, maxBlocksPerSeq: number, numSlots: number,
  maxQLen: number, maxContextLen: number, scale: number, q: S, qOff: O, kCache: S, kOff: O, vCache: S, vOff: O,
  out: S, outOff: O, cuSeqlensQ: S, cuOff: O, contextLens: S, ctxOff: O, blockTables: S, btOff: O, seqOrder: S | undefined, seqOrderOff: O,
  workspace?: S, workspaceOff?: O): void;
export interface FlashDecodePlan {
  /** Blocks per (sequence, KV head). */
  splits: number;
  /** Keys per split (a multiple of 64). */
  partition: number;
  /** The float32 workspace the partial results need (0 with one split). */
  workspaceBytes: number;
}
/** How flashDecode splits the contexts on `device` (from host-known bounds only) and the workspace it needs. */
export declare function flashDecodePlan(device: number, version: number, splits: number, numSeqs: number, numTokens: number,
  qHeads: number, kvHeads: number, headDim: number, maxQLen: number, maxContextLen: number): FlashDecodePlan;
/** Lesson 11's persistent decode step: whether it runs the shape on `device` (why '' then) and how. */
export interface PersistentDecodePlan {
  why: string;
  /** Blocks: one per SM. */
  grid: number;
  /** Attention units per (token, KV head). */
  splits: number;
  /** Dynamic shared memory a block, bytes. */
  smem: number;
  /** The f32 scratch persistentDecode needs (its `partials`), in elements. */
  partialFloats: number;
  /** The i32 counters it needs (its `sync`), in elements. */
  syncWords: number;
}
export declare function persistentDecodePlan(device: number, tokens: number, layers: number, hidden: number, qHeads: number,
  kvHeads: number, headDim: number, inter: number): PersistentDecodePlan;
/** Every decoder layer of a decode step of 1-8 rows in one launch (CUDA only; engine-core's ops.persistentDecode checks the shapes). */
export declare function persistentDecode(dtype: number, tokens: number, layers: number, hidden: number, qHeads: number, kvHeads: number,
  headDim: number, inter: number, maxPos: number, numSlots: number, blockSize: number, tableWidth: number, eps: number, scale: number,
  ...buffers: (S | O)[]): void;
/**
 * Lesson 13's cascade decode of a decode step (maxQLen <= 1): the splits that groups of adjacent
 * sequences hold in the same blocks read once per group, the rest per sequence, partials combined.
 * CUDA needs the trailing workspace of flashCascadePlan's workspaceBytes. Returns the keys the CPU
 * reference read per KV head (the plain decode: sum of the context lengths); -1 on CUDA.
 */
export declare function flashCascadeDecode(dtype: number, numSeqs: number, numTokens: number, qHeads: number,
  kvHeads: number, headDim: number, blockSize: number, maxBlocksPerSeq: number, numSlots: number, maxQLen: number,
  maxContextLen: number, scale: number, q: S, qOff: O, kCache: S, kOff: O, vCache: S, vOff: O, out: S, outOff: O,
  cuSeqlensQ: S, cuOff: O, contextLens: S, ctxOff: O, blockTables: S, btOff: O, seqOrder: S | undefined, seqOrderOff: O, workspace?: S, workspaceOff?: O): number;
export interface FlashCascadePlan {
  /** Splits of 256 keys over the longest context that groups may share (one block per split, KV head and window of 32 sequences). */
  sharedSplits: number;
  /** Lesson 09's v3 split plan for each sequence's own keys. */
  ownSplits: number;
  ownPartition: number;
  /** The float32 workspace for the partials of both (0 on the CPU). */
  workspaceBytes: number;
}
/** The cascade decode's launch shapes on `device` (host-known bounds only) and the workspace it needs. */
export declare function flashCascadePlan(device: number, numSeqs: number, numTokens: number, qHeads: number, kvHeads: number,
  headDim: number, maxContextLen: number): FlashCascadePlan;
/** One draw per f32 logits row from softmax(x / temperature) at the given uniform numbers (temperature 0: argmax). */
export declare function sampleRows(rows: number, n: number, logits: S, logitsOff: O, temperature: S, tOff: O,
  uniform: S, uOff: O, out: S, outOff: O): void;
/**
 * Lesson 12: one token per f32 logits row, drawn on the device with per-row params (12 words a row,
 * aios.h SampleRowParams), penalty entries (4 words each) and the workspace of sampleWorkspaceBytes;
 * out holds rows x 42 words (tokens, chosen log-probs, top ids, top log-probs). shard (lesson 14): the logits'
 * n columns are entries indexBase.. (a multiple of 4) of each row, the rows plain (no filter, penalty or
 * log-probs), and out holds rows x 2 words instead: the row's best score (f32 bits) and its global index
 * (0x7fffffff for a sampled row whose slice kept nothing). indexBase is 0 otherwise.
 */
export declare function sampleTokens(rows: number, n: number, numPenalties: number, anyFiltered: boolean, anyLogprobs: boolean,
  indexBase: number, shard: boolean, logits: S, logitsOff: O, params: S, paramsOff: O, penalties: S, penOff: O, out: S, outOff: O, workspace: S, wsOff: O): void;
/** Bytes of the workspace sampleTokens needs. */
export declare function sampleWorkspaceBytes(rows: number, n: number, numPenalties: number): number;
/** Philox4x32-10 of counter (c0..c3) and key (k0, k1): four uint32 words. */
export declare function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): number[];
/** residual += x; out = rmsnorm(residual) * weight (lesson 10). */
export declare function addRmsnorm(dtype: number, rows: number, dim: number, eps: number,
  x: S, xOff: O, residual: S, resOff: O, weight: S, wOff: O, out: S, outOff: O): void;
/** out[r, i] = silu(gateUp[r, i]) * gateUp[r, inter + i] (lesson 10). */
export declare function siluMul(dtype: number, rows: number, inter: number, gateUp: S, guOff: O, out: S, outOff: O): void;
/** Per token: q heads normed and rotated into qOut; k heads normed, rotated, stored at the slot; v heads stored (lesson 10). */
export declare function qkNormRopeStore(dtype: number, tokens: number, qHeads: number, kvHeads: number, headDim: number,
  maxPos: number, numSlots: number, eps: number, qkv: S, qkvOff: O, qNorm: S, qnOff: O, kNorm: S, knOff: O,
  positions: S, posOff: O, cos: S, cosOff: O, sin: S, sinOff: O, slotMapping: S, smOff: O,
  qOut: S, qOff: O, kCache: S, kOff: O, vCache: S, vOff: O): void;
export declare function argmax(dtype: number, rows: number, n: number, x: S, xOff: O, out: S, outOff: O): void;
export declare function gatherRows(idxDtype: number, srcRows: number, nIdx: number, rowBytes: number,
  src: S, srcOff: O, idx: S, idxOff: O, out: S, outOff: O): void;
export declare function scatterRows(idxDtype: number, dstRows: number, nIdx: number, rowBytes: number,
  src: S, srcOff: O, idx: S, idxOff: O, dst: S, dstOff: O): void;

// ---- tensor parallelism (lesson 14)

/** One rank's part of a vocab-parallel embedding: rows [start, start + rows) of the table; other ids give zero rows. */
export declare function embeddingShard(dtype: number, idDtype: number, nIds: number, vocab: number, start: number, rows: number, dim: number,
  table: Storage, tableOffset: number, ids: Storage, idsOffset: number, out: Storage, outOffset: number): void;
/** A new communicator's 128-byte id (throws where the addon was built without NCCL). */
export declare function ncclUniqueId(): Uint8Array;
/** Whether `device` can read `peer`'s memory directly (peer access: NVLink or PCIe P2P); false without CUDA. */
export declare function canAccessPeer(device: number, peer: number): boolean;
/**
 * This thread's rank of a one-shot all-reduce between the GPUs of this process over peer
 * access (lesson 14, native/src/cuda/peer_allreduce.cu): for a decode step's small messages,
 * where NCCL's fixed cost dominates. Every rank makes one, hands addresses() to the others,
 * then connect()s with every rank's (by rank). allReduce() is enqueued on the device's stream,
 * in place, and may be captured in a CUDA graph; every rank must make the same calls in the
 * same order. A peer that does not arrive within timeoutMs ends the kernel with wrong sums and
 * check() (after the stream is drained) throws, naming the rank.
 */
export declare class PeerAllReduce {
  constructor(device: number, rank: number, nranks: number, capacityBytes: number, timeoutMs: number);
  /** [staging buffer, flags]: this rank's device addresses, for the other ranks' connect(). */
  addresses(): BigUint64Array;
  connect(devices: Int32Array, staging: BigUint64Array, flags: BigUint64Array): void;
  /** count elements (bytes a multiple of 16, at most `capacity`), summed over the ranks in rank order, in place. */
  allReduce(dtype: number, count: number, data: Storage, dataOffset: number): void;
  /**
   * Lesson 10's addRmsnorm fused in: x [rows, dim] summed over the ranks (x left as it was),
   * residual += the sum, out = RMSNorm(residual) * weight, with the roundings of allReduce then
   * addRmsnorm. For shapes fitsAddRmsnorm accepts (bf16/f16, dim a multiple of 8, within capacity).
   */
  allReduceAddRmsnorm(dtype: number, rows: number, dim: number, eps: number, x: Storage, xOffset: number, residual: Storage,
    residualOffset: number, weight: Storage, weightOffset: number, out: Storage, outOffset: number): void;
  fitsAddRmsnorm(rows: number, dim: number, dtype: number): boolean;
  check(): void;
  dispose(): void;
  /** The largest message in bytes. */
  readonly capacity: number;
  readonly disposed: boolean;
}
/**
 * This thread's rank of an NCCL communicator on a CUDA device. The set-up gives
 * up after timeoutMs; collectives are enqueued on the device's stream and return;
 * wait() gives up after timeoutMs (or its own, shorter, bound) and aborts the
 * communicator (a dead peer ends in an exception, not a hang).
 */
export declare class NcclComm {
  constructor(device: number, nranks: number, rank: number, id: Uint8Array, timeoutMs: number);
  allReduce(dtype: number, count: number, send: Storage, sendOffset: number, recv: Storage, recvOffset: number): void;
  allGather(dtype: number, countPerRank: number, nranks: number, send: Storage, sendOffset: number, recv: Storage, recvOffset: number): void;
  broadcast(dtype: number, count: number, root: number, send: Storage, sendOffset: number, recv: Storage, recvOffset: number): void;
  /** Waits for everything queued on the stream, polling, with the communicator's timeout or `timeoutMs`. */
  wait(timeoutMs?: number): void;
  /** Throws if NCCL's freeing does not finish within 10 s (a CUDA graph that captured the communicator is still alive). */
  abort(): void;
  /** Frees the communicator; throws, as abort() does, rather than hang. Dispose the graphs that captured it first. */
  dispose(): void;
  readonly disposed: boolean;
}
