// Safetensors: the checkpoint format of Hugging Face models.
//
//   [8 bytes: N, little-endian u64][N bytes: JSON header][data section]
//
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}
// (offsets relative to the start of the data section), plus an optional
// "__metadata__" map of strings. A sharded checkpoint adds
// model.safetensors.index.json, {weight_map: {tensorName: shardFile}}.
//
// Reading validates the whole header before touching the data, then streams
// each tensor from disk through one reusable chunk buffer into the tensor's
// storage (on the CPU or the GPU): a checkpoint is never held in the JS heap.
// Writing streams the same way, so a 1.2 GB file needs only its chunks in memory.
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync, writeFileSync, writeSync, unlinkSync } from 'node:fs';
import path from 'node:path';

import { type Device, defaultDevice } from '../backend.ts';
import { type DType, assertDType, dtypeSize } from '../dtype.ts';
import { cast } from '../ops.ts';
import { Tensor, formatShape, numelOf } from '../tensor.ts';

// ---------------------------------------------------------------- dtypes

/** The dtype names a safetensors header may use, with their sizes in bytes. */
const ST_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type SafetensorsDType = keyof typeof ST_SIZES;

const TO_ENGINE: Partial<Record<SafetensorsDType, DType>> = { BF16: 'bf16', F16: 'f16', F32: 'f32', I32: 'i32', I64: 'i64' };
const FROM_ENGINE: Record<DType, SafetensorsDType> = { bf16: 'BF16', f16: 'F16', f32: 'F32', i32: 'I32', i64: 'I64' };

function isStDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.hasOwn(ST_SIZES, s);
}

/** The engine dtype a safetensors dtype loads as, or undefined where tensors cannot hold it (F64, U8, ...). */
export function engineDType(st: SafetensorsDType): DType | undefined {
  return TO_ENGINE[st];
}

// ---------------------------------------------------------------- shared types

/** Where one tensor lives and what it is. */
export interface TensorInfo {
  readonly name: string;
  /** The .safetensors file that holds it. */
  readonly file: string;
  /** As stored in the file. */
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Absolute position of the first byte in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface ReadOptions {
  /**
   * Size of the one host buffer tensors are streamed through (default 32 MiB;
   * any size from 1 byte works, which the tests use to exercise chunking).
   */
  chunkBytes?: number;
}

export interface LoadOptions {
  /** Where the tensor goes (default: the default device). */
  device?: Device;
  /** Converts on the device after upload when the file stores another dtype. */
  dtype?: DType;
  /** Checked before anything is read; a mismatch names both shapes. */
  expectShape?: readonly number[];
  /**
   * Reads only elements [start, start + length) along one dimension (lesson 14:
   * a rank's rows of a column-parallel weight, or its columns of a row-parallel
   * one). Only those bytes are read from the file; expectShape is the whole tensor's.
   */
  slice?: TensorSlice;
}

/** A range along one dimension of a stored tensor. */
export interface TensorSlice {
  dim: number;
  start: number;
  length: number;
}

/**
 * The byte runs of a slice, in order: [file offset, length] pairs relative to the
 * tensor's first byte (one run for a slice of the first dimension, one per outer
 * index otherwise), and the slice's shape.
 */
export function sliceRuns(shape: readonly number[], item: number, slice: TensorSlice, where: string): { shape: number[]; runs: [number, number][] } {
  const { dim, start, length } = slice;
  if (!Number.isInteger(dim) || dim < 0 || dim >= shape.length)
    throw new RangeError(`${where}: slice dimension ${dim} is not a dimension of shape ${formatShape(shape)}`);
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > shape[dim]!)
    throw new RangeError(`${where}: slice [${start}, ${start + length}) of dimension ${dim} is outside shape ${formatShape(shape)}`);
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1) * item;
  const runs: [number, number][] = [];
  if (length > 0 && inner > 0) for (let o = 0; o < outer; o++) runs.push([(o * shape[dim]! + start) * inner, length * inner]);
  const out = [...shape];
  out[dim] = length;
  return { shape: out, runs };
}

export const DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024;
/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;

function checkChunkBytes(n: unknown): number {
  if (n === undefined) return DEFAULT_CHUNK_BYTES;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)
    throw new RangeError(`safetensors: chunkBytes must be a positive integer, got ${String(n)}`);
  return n;
}

/** One host buffer, allocated on first use and grown when needed, shared by every file of a checkpoint. */
class ChunkBuffer {
  #buf: Buffer | undefined;
  constructor(readonly chunkBytes: number) {}
  /** A buffer of at least `min(bytes, chunkBytes)` bytes, never less than 8 (one element of any dtype). */
  get(bytes: number): Buffer {
    const want = Math.max(8, Math.min(bytes, this.chunkBytes));
    if (!this.#buf || this.#buf.length < want) this.#buf = Buffer.allocUnsafeSlow(want);
    return this.#buf;
  }
  release(): void {
    this.#buf = undefined;
  }
}

// ---------------------------------------------------------------- helpers

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Reads exactly `length` bytes at `position`, or throws naming the file. */
function readFully(fd: number, buf: Uint8Array, length: number, position: number, file: string, what: string): void {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = readSync(fd, buf, done, length - done, position + done);
    } catch (e) {
      throw new Error(`${file}: reading ${what} failed: ${errMsg(e)}`);
    }
    if (n === 0)
      throw new Error(`${file}: unexpected end of file reading ${what} (wanted bytes [${position}, ${position + length}), the file ends at ${position + done}); the file is truncated`);
    done += n;
  }
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, prev[j]! + 1, cur[j - 1]! + 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The few names nearest to `name`, for "did you mean" messages. */
export function closeNames(name: string, names: Iterable<string>, count = 5): string[] {
  return [...names]
    .map((n) => ({ n, d: editDistance(name, n) - (n.includes(name) || name.includes(n) ? name.length / 2 : 0) }))
    .sort((x, y) => x.d - y.d || (x.n < y.n ? -1 : 1))
    .slice(0, count)
    .map((x) => x.n);
}

function missingTensorError(where: string, name: string, names: readonly string[]): Error {
  const near = closeNames(name, names);
  const hint = near.length ? `; closest names: ${near.map((n) => JSON.stringify(n)).join(', ')}` : '';
  return new Error(`${where}: no tensor named ${JSON.stringify(name)} (${names.length} tensors${hint})`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

// ---------------------------------------------------------------- header parsing

interface Parsed {
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

function parseHeader(fd: number, file: string, fileSize: number): Parsed {
  if (fileSize < 8) throw new Error(`${file}: not a safetensors file: ${fileSize} bytes, too short for the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 8, 0, file, 'the header length');
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(fileSize - 8))
    throw new Error(`${file}: header length ${n} is larger than the file allows (${fileSize} bytes in all); the file is truncated or not safetensors`);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new Error(`${file}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerBytes = Number(n);
  if (headerBytes < 2) throw new Error(`${file}: header length ${headerBytes} is too small for a JSON header`);
  const hbuf = Buffer.alloc(headerBytes);
  readFully(fd, hbuf, headerBytes, 8, file, 'the header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hbuf));
  } catch (e) {
    throw new Error(`${file}: the ${headerBytes}-byte header is not valid JSON: ${errMsg(e)}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new Error(`${file}: the header must be a JSON object, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`);

  const dataStart = 8 + headerBytes;
  const dataBytes = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const ranges: { name: string; begin: number; end: number }[] = [];

  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${file}: "__metadata__" must be an object of strings`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
      continue;
    }
    const where = `${file}: tensor ${JSON.stringify(name)}`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where}: header entry must be an object {dtype, shape, data_offsets}`);
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isStDType(e.dtype))
      throw new Error(`${where}: unsupported dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(ST_SIZES).join(', ')})`);
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isSafeInteger(s) && (s as number) >= 0))
      throw new Error(`${where}: shape ${JSON.stringify(e.shape)} must be an array of non-negative integers`);
    const shape = e.shape as number[];
    const numel = numelOf(shape);
    const nbytes = numel * ST_SIZES[e.dtype];
    if (!Number.isSafeInteger(nbytes)) throw new Error(`${where}: shape ${formatShape(shape)} is too large`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && (o as number) >= 0))
      throw new Error(`${where}: data_offsets ${JSON.stringify(off)} must be two non-negative integers [begin, end]`);
    const [begin, end] = off as [number, number];
    if (end < begin) throw new Error(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end - begin !== nbytes)
      throw new Error(
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${e.dtype} ${formatShape(shape)} needs ${numel} x ${ST_SIZES[e.dtype]} = ${nbytes}`,
      );
    if (end > dataBytes)
      throw new Error(
        `${where}: data_offsets [${begin}, ${end}] reach past the end of the data section (${dataBytes} bytes; file ${fileSize} bytes): the file is truncated or its offsets are wrong`,
      );
    tensors.set(name, { name, file, dtype: e.dtype, shape, byteOffset: dataStart + begin, byteLength: nbytes });
    if (nbytes > 0) ranges.push({ name, begin, end });
  }

  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const p = ranges[i - 1]!, c = ranges[i]!;
    if (c.begin < p.end)
      throw new Error(
        `${file}: tensors ${JSON.stringify(p.name)} [${p.begin}, ${p.end}) and ${JSON.stringify(c.name)} [${c.begin}, ${c.end}) overlap in the data section`,
      );
  }
  return { metadata, tensors };
}

// ---------------------------------------------------------------- one file

/**
 * One open .safetensors file: the header, parsed and checked, and the file
 * descriptor tensors are streamed from. close() (or `using`) releases it.
 */
export class SafetensorsFile implements Disposable {
  readonly file: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly #tensors: Map<string, TensorInfo>;
  readonly #chunk: ChunkBuffer;
  #fd: number | undefined;

  /** Use openSafetensors(). */
  constructor(file: string, fd: number, chunk: ChunkBuffer) {
    this.file = file;
    this.#chunk = chunk;
    this.#fd = fd;
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch (e) {
      throw new Error(`${file}: cannot stat: ${errMsg(e)}`);
    }
    const p = parseHeader(fd, file, size);
    this.metadata = p.metadata;
    this.#tensors = p.tensors;
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.#tensors.keys()];
  }

  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.#tensors.get(name);
    if (!t) throw missingTensorError(this.file, name, this.names());
    return t;
  }

  /** Reads one tensor onto a device; see LoadOptions. */
  load(name: string, opts: LoadOptions = {}): Tensor {
    return this.#load(this.info(name), opts);
  }

  get closed(): boolean {
    return this.#fd === undefined;
  }

  close(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    closeSync(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #load(info: TensorInfo, opts: LoadOptions): Tensor {
    const where = `${this.file}: tensor ${JSON.stringify(info.name)}`;
    if (this.#fd === undefined) throw new Error(`${where}: the file was closed`);
    const fd = this.#fd;
    const src = engineDType(info.dtype);
    if (!src)
      throw new Error(`${where}: dtype ${info.dtype} is not supported by the engine (tensors hold ${Object.keys(TO_ENGINE).join(', ')})`);
    if (opts.expectShape !== undefined && !sameShape(info.shape, opts.expectShape))
      throw new Error(`${where}: shape ${formatShape(info.shape)} does not match the expected ${formatShape(opts.expectShape)}`);
    const dtype = opts.dtype === undefined ? src : assertDType(opts.dtype, `${where}: requested dtype`);
    const device = opts.device ?? defaultDevice();

    const { shape, runs } = opts.slice ? sliceRuns(info.shape, dtypeSize(src), opts.slice, where) : { shape: [...info.shape], runs: [[0, info.byteLength]] as [number, number][] };
    const bytes = runs.reduce((n, r) => n + r[1], 0);
    const out = Tensor.empty(shape, { dtype, device });
    try {
      if (bytes === 0) return out;
      const buf = this.#chunk.get(bytes);
      const cap = Math.min(this.#chunk.chunkBytes, buf.length);
      const item = dtypeSize(src);
      // The runs are read back to back into the host buffer, which is uploaded
      // whenever it is full: a column slice's many short runs cost one upload per chunk.
      const staging = dtype === src ? undefined : Tensor.empty([Math.max(1, Math.floor(Math.min(cap, bytes) / item))], { dtype: src, device });
      const flat = out.view(-1);
      let filled = 0, uploaded = 0;
      const flush = () => {
        if (filled === 0) return;
        if (!staging) out.storage.copyFromHost(buf.subarray(0, filled), out.byteOffset + uploaded);
        else {
          // Whole elements as stored into a staging tensor, then cast on the device.
          const ne = filled / item;
          staging.storage.copyFromHost(buf.subarray(0, filled), staging.byteOffset);
          cast(staging.narrow(0, 0, ne), dtype, flat.narrow(0, uploaded / item, ne));
        }
        uploaded += filled;
        filled = 0;
      };
      const step = staging ? Math.max(item, cap - (cap % item)) : cap;
      try {
        for (const [at, len] of runs) {
          for (let pos = 0; pos < len; ) {
            const n = Math.min(len - pos, step - filled);
            readFully(fd, buf.subarray(filled), n, info.byteOffset + at + pos, this.file, `tensor ${JSON.stringify(info.name)}`);
            filled += n;
            pos += n;
            if (filled === step) flush();
          }
        }
        flush();
      } finally {
        flat.dispose();
        staging?.dispose();
      }
      return out;
    } catch (e) {
      out.dispose();
      const msg = errMsg(e);
      throw msg.includes(this.file) ? e : new Error(`${where}: loading onto ${device} as ${dtype} failed: ${msg}`);
    }
  }
}

/** Opens a .safetensors file and validates its header; reads no tensor data. */
export function openSafetensors(file: string, opts: ReadOptions = {}): SafetensorsFile {
  return openWith(file, new ChunkBuffer(checkChunkBytes(opts.chunkBytes)));
}

function openWith(file: string, chunk: ChunkBuffer): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new Error(`${file}: cannot open: ${errMsg(e)}`);
  }
  try {
    return new SafetensorsFile(file, fd, chunk);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

// ---------------------------------------------------------------- checkpoints

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/**
 * A model's weights: one model.safetensors, or shards listed by
 * model.safetensors.index.json. Every file is opened once, when the
 * checkpoint is opened, and stays open until close().
 */
export class Checkpoint implements Disposable {
  readonly #files: SafetensorsFile[];
  readonly #where: Map<string, SafetensorsFile>;
  readonly #chunk: ChunkBuffer;

  /** Use openCheckpoint(). */
  constructor(
    /** The folder (or file) it was opened from. */
    readonly source: string,
    /** The index file for a sharded checkpoint. */
    readonly indexFile: string | undefined,
    files: SafetensorsFile[],
    where: Map<string, SafetensorsFile>,
    chunk: ChunkBuffer,
  ) {
    this.#files = files;
    this.#where = where;
    this.#chunk = chunk;
  }

  /** The .safetensors files, in the order they were opened. */
  get files(): string[] {
    return this.#files.map((f) => f.file);
  }

  /** The first file's __metadata__ (shards normally share it). */
  get metadata(): Readonly<Record<string, string>> {
    return this.#files[0]?.metadata ?? {};
  }

  names(): string[] {
    return [...this.#where.keys()];
  }

  has(name: string): boolean {
    return this.#where.has(name);
  }

  info(name: string): TensorInfo {
    return this.#file(name).info(name);
  }

  /** Total bytes of tensor data. */
  get totalBytes(): number {
    let n = 0;
    for (const [name, f] of this.#where) n += f.info(name).byteLength;
    return n;
  }

  load(name: string, opts: LoadOptions = {}): Tensor {
    return this.#file(name).load(name, opts);
  }

  close(): void {
    let first: unknown;
    for (const f of this.#files) {
      try {
        f.close();
      } catch (e) {
        first ??= e;
      }
    }
    this.#chunk.release();
    if (first !== undefined) throw first;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #file(name: string): SafetensorsFile {
    const f = this.#where.get(name);
    if (!f) throw missingTensorError(this.indexFile ?? this.#files[0]?.file ?? this.source, name, this.names());
    return f;
  }
}

/**
 * Opens a checkpoint: a folder holding model.safetensors or
 * model.safetensors.index.json (the single file wins when both exist, as in
 * transformers), or a .safetensors file itself. Validates every header, that
 * every shard the index names exists, and that it holds the tensors mapped to it.
 */
export function openCheckpoint(dirOrFile: string, opts: ReadOptions = {}): Checkpoint {
  const chunk = new ChunkBuffer(checkChunkBytes(opts.chunkBytes));
  let isFile = false;
  try {
    isFile = statSync(dirOrFile).isFile();
  } catch (e) {
    throw new Error(`${dirOrFile}: no such checkpoint folder or file (${errMsg(e)})`);
  }
  const single = isFile ? dirOrFile : path.join(dirOrFile, SINGLE_FILE);
  if (isFile || existsSync(single)) {
    const f = openWith(single, chunk);
    return new Checkpoint(dirOrFile, undefined, [f], new Map(f.names().map((n) => [n, f])), chunk);
  }
  const indexFile = path.join(dirOrFile, INDEX_FILE);
  if (!existsSync(indexFile)) throw new Error(`${dirOrFile}: no ${SINGLE_FILE} or ${INDEX_FILE} in this folder`);
  const weightMap = readIndex(indexFile);

  const opened = new Map<string, SafetensorsFile>();
  const where = new Map<string, SafetensorsFile>();
  try {
    for (const [name, shard] of Object.entries(weightMap)) {
      let f = opened.get(shard);
      if (!f) {
        const shardPath = path.join(dirOrFile, shard);
        if (!existsSync(shardPath))
          throw new Error(`${indexFile}: tensor ${JSON.stringify(name)} is mapped to shard ${JSON.stringify(shard)}, but ${shardPath} does not exist`);
        f = openWith(shardPath, chunk);
        opened.set(shard, f);
      }
      if (!f.has(name))
        throw new Error(`${indexFile}: tensor ${JSON.stringify(name)} is mapped to ${f.file}, which does not contain it`);
      where.set(name, f);
    }
  } catch (e) {
    for (const f of opened.values()) f.close();
    throw e;
  }
  return new Checkpoint(dirOrFile, indexFile, [...opened.values()], where, chunk);
}

function readIndex(indexFile: string): Record<string, string> {
  let json: unknown;
  try {
    // The index is small (names and file names): reading it whole is fine.
    const fd = openSync(indexFile, 'r');
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(size);
      readFully(fd, buf, size, 0, indexFile, 'the index');
      json = JSON.parse(buf.toString('utf8'));
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const msg = errMsg(e);
    throw new Error(msg.startsWith(indexFile) ? msg : `${indexFile}: not a valid index: ${msg}`);
  }
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) throw new Error(`${indexFile}: "weight_map" must be an object {tensorName: shardFile}`);
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>))
    if (typeof shard !== 'string' || shard === '')
      throw new Error(`${indexFile}: tensor ${JSON.stringify(name)} maps to ${JSON.stringify(shard)}, not a shard file name`);
  return wm as Record<string, string>;
}

// ---------------------------------------------------------------- writing

export interface SafetensorsEntry {
  name: string;
  /** An engine dtype ('bf16') or a safetensors one ('BF16', 'F64', 'U8', ...). */
  dtype: DType | SafetensorsDType;
  shape: readonly number[];
  /** The raw stored bytes (bf16/f16 as Uint16Array bits, in host byte order, i.e. little-endian). */
  data?: ArrayBufferView;
  /** Or a producer of the same bytes in chunks, called once when the tensor is written. */
  chunks?: () => Iterable<ArrayBufferView>;
}

function stDTypeOf(d: string, where: string): SafetensorsDType {
  if (isStDType(d)) return d;
  if (d in FROM_ENGINE) return FROM_ENGINE[d as DType];
  throw new TypeError(`${where}: unknown dtype ${JSON.stringify(d)}`);
}

/** Coalesces small writes; large ones go straight to the file. */
class FileWriter {
  #pending = Buffer.allocUnsafe(1 << 20);
  #used = 0;
  #pos = 0;
  constructor(private readonly fd: number) {}
  write(v: ArrayBufferView): void {
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    if (bytes.length <= this.#pending.length - this.#used) {
      this.#pending.set(bytes, this.#used);
      this.#used += bytes.length;
      return;
    }
    this.flush();
    if (bytes.length < this.#pending.length) {
      this.#pending.set(bytes, 0);
      this.#used = bytes.length;
    } else this.#writeAll(bytes);
  }
  flush(): void {
    if (this.#used === 0) return;
    this.#writeAll(this.#pending.subarray(0, this.#used));
    this.#used = 0;
  }
  #writeAll(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, this.#pos + done);
    this.#pos += bytes.length;
  }
}

/** Where a .safetensors file's bytes go: its prefix (length + header), and each tensor's place. */
export interface SafetensorsLayout {
  /** The 8-byte header length and the header, padded with spaces to a multiple of 8. */
  prefix: Buffer;
  /** Indices of the tensors in file order: wider dtypes first, a stable sort (the reference implementation's order). */
  order: number[];
  /** Absolute file offset of each tensor's first byte, by its index in the list given. */
  offsets: number[];
  dataBytes: number;
}

/**
 * The layout writeSafetensors gives these tensors: a writer that fills tensors in
 * parallel (random.ts, with jobs) writes each one at its offset and gets the same file.
 */
export function safetensorsLayout(
  tensors: readonly { name: string; dtype: SafetensorsDType; shape: readonly number[] }[],
  metadata?: Record<string, string>,
  where = 'safetensorsLayout',
): SafetensorsLayout {
  const order = tensors.map((_, i) => i).sort((a, b) => ST_SIZES[tensors[b]!.dtype] - ST_SIZES[tensors[a]!.dtype] || a - b);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TypeError(`${where}: metadata ${JSON.stringify(k)} must be a string`);
    header.__metadata__ = metadata;
  }
  const relative: number[] = new Array<number>(tensors.length);
  let offset = 0;
  for (const i of order) {
    const t = tensors[i]!;
    const nbytes = numelOf(t.shape) * ST_SIZES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + nbytes] };
    relative[i] = offset;
    offset += nbytes;
  }
  let headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (headerBytes.length % 8)) % 8;
  if (pad) headerBytes = Buffer.concat([headerBytes, Buffer.alloc(pad, 0x20)]);
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(headerBytes.length));
  const prefix = Buffer.concat([lenBuf, headerBytes]);
  return { prefix, order, offsets: relative.map((r) => r + prefix.length), dataBytes: offset };
}

/**
 * Writes a .safetensors file. Tensors are laid out in the order given, except
 * that wider dtypes come first (a stable sort by item size, as the reference
 * implementation does) so every tensor starts aligned to its element size.
 * The header is padded with spaces to a multiple of 8 bytes. Data is written
 * as it is produced: with `chunks`, only one chunk at a time is in memory.
 * Returns the number of bytes of tensor data written. On error the partial
 * file is removed.
 */
export function writeSafetensors(file: string, entries: readonly SafetensorsEntry[], metadata?: Record<string, string>): number {
  const seen = new Set<string>();
  const plan = entries.map((e, i) => {
    const where = `writeSafetensors ${file}: tensor ${JSON.stringify(e?.name)}`;
    if (typeof e?.name !== 'string' || e.name === '') throw new TypeError(`writeSafetensors ${file}: entry ${i} has no name`);
    if (e.name === '__metadata__') throw new Error(`${where}: the name is reserved`);
    if (seen.has(e.name)) throw new Error(`${where}: the name appears twice`);
    seen.add(e.name);
    const dtype = stDTypeOf(e.dtype, where);
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isSafeInteger(s) && s >= 0))
      throw new RangeError(`${where}: shape ${JSON.stringify(e.shape)} must be non-negative integers`);
    const nbytes = numelOf(e.shape) * ST_SIZES[dtype];
    if ((e.data === undefined) === (e.chunks === undefined)) throw new Error(`${where}: give exactly one of data and chunks`);
    if (e.data !== undefined) {
      if (!ArrayBuffer.isView(e.data)) throw new TypeError(`${where}: data must be a typed array`);
      if (e.data.byteLength !== nbytes)
        throw new RangeError(`${where}: data has ${e.data.byteLength} bytes, ${dtype} ${formatShape(e.shape)} needs ${nbytes}`);
    }
    return { entry: e, where, dtype, nbytes };
  });
  const layout = safetensorsLayout(plan.map((p) => ({ name: p.entry.name, dtype: p.dtype, shape: p.entry.shape })), metadata, `writeSafetensors ${file}`);
  const ordered = layout.order.map((i) => plan[i]!);

  let fd: number;
  try {
    fd = openSync(file, 'w');
  } catch (e) {
    throw new Error(`writeSafetensors ${file}: cannot create: ${errMsg(e)}`);
  }
  try {
    const w = new FileWriter(fd);
    w.write(layout.prefix);
    for (const p of ordered) {
      if (p.entry.data !== undefined) {
        w.write(p.entry.data);
        continue;
      }
      let got = 0;
      for (const c of p.entry.chunks!()) {
        if (!ArrayBuffer.isView(c)) throw new TypeError(`${p.where}: a chunk is not a typed array`);
        got += c.byteLength;
        if (got > p.nbytes) throw new RangeError(`${p.where}: chunks exceed the ${p.nbytes} bytes of ${p.dtype} ${formatShape(p.entry.shape)}`);
        w.write(c);
      }
      if (got !== p.nbytes) throw new RangeError(`${p.where}: chunks gave ${got} bytes, ${p.dtype} ${formatShape(p.entry.shape)} needs ${p.nbytes}`);
    }
    w.flush();
    closeSync(fd);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    try {
      unlinkSync(file);
    } catch {
      // nothing to remove
    }
    const msg = errMsg(e);
    throw msg.includes(file) ? e : new Error(`writeSafetensors ${file}: ${msg}`);
  }
  return layout.dataBytes;
}

/**
 * Writes model.safetensors.index.json for shards written with writeSafetensors:
 * {metadata: {total_size}, weight_map} with names sorted, as transformers writes it.
 */
export function writeShardIndex(dir: string, weightMap: Record<string, string> | ReadonlyMap<string, string>, totalSize: number): string {
  const entries = weightMap instanceof Map ? [...weightMap.entries()] : Object.entries(weightMap);
  for (const [name, shard] of entries)
    if (typeof shard !== 'string' || shard === '') throw new TypeError(`writeShardIndex ${dir}: tensor ${JSON.stringify(name)} has no shard file`);
  if (!Number.isSafeInteger(totalSize) || totalSize < 0) throw new RangeError(`writeShardIndex ${dir}: totalSize must be a non-negative integer`);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const file = path.join(dir, INDEX_FILE);
  writeFileSync(file, JSON.stringify({ metadata: { total_size: totalSize }, weight_map: Object.fromEntries(entries) }, null, 2) + '\n');
  return file;
}
