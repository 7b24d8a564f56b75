// Safetensors reader, checkpoints and writer: round trips, interop with the
// reference implementation, chunked streaming, and one test per kind of
// corruption, each checking that the error names the file and the tensor.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { Tensor, cudaAvailable, synchronize, type Device } from '../src/index.ts';
import {
  type SafetensorsEntry,
  INDEX_FILE,
  openCheckpoint,
  openSafetensors,
  writeSafetensors,
  writeShardIndex,
} from '../src/model/safetensors.ts';

const devices: Device[] = cudaAvailable() ? ['cpu', 'cuda:0'] : ['cpu'];

const root = mkdtempSync(path.join(os.tmpdir(), 'aios-safetensors-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
function freshDir(): string {
  const d = path.join(root, `t${counter++}`);
  rmSync(d, { recursive: true, force: true });
  return mkdtempSync(d);
}

/** The raw bytes of a typed array. */
function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** A file laid out by hand: [u64 header length][header][data], for corruption tests. */
function rawFile(file: string, header: string | object, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

/** Raw bf16 / f16 bits for float values (rounded on the CPU backend, nearest even). */
function halfBits(values: number[], dtype: 'bf16' | 'f16'): Uint16Array {
  const t = Tensor.fromArray(values, [values.length], { dtype, device: 'cpu' });
  const bits = t.toArrayRaw() as Uint16Array;
  t.dispose();
  return bits;
}

function fdCount(): number | undefined {
  return existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : undefined;
}

/** Catches the error a function throws, failing the test when it does not throw. */
function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, none was thrown');
}

// Several dtypes and shapes, including a scalar and empty tensors. Odd element
// counts make the wider dtypes depend on the writer's alignment ordering.
function sampleEntries(): (SafetensorsEntry & { data: ArrayBufferView })[] {
  return [
    { name: 'model.embed_tokens.weight', dtype: 'bf16', shape: [5, 3], data: halfBits([...Array(15).keys()].map((i) => (i - 7) * 0.37), 'bf16') },
    { name: 'model.norm.weight', dtype: 'f16', shape: [3], data: halfBits([0.5, 65504, -1e-5], 'f16') },
    { name: 'layer.f32', dtype: 'f32', shape: [2, 3, 2], data: Float32Array.from({ length: 12 }, (_, i) => i * 1.25 - 4) },
    { name: 'ids.i32', dtype: 'i32', shape: [3], data: Int32Array.from([7, -8, 2147483647]) },
    { name: 'ids.i64', dtype: 'i64', shape: [2], data: BigInt64Array.from([1n, -(2n ** 40n)]) },
    { name: 'scalar', dtype: 'f32', shape: [], data: Float32Array.from([3.5]) },
    { name: 'empty', dtype: 'f32', shape: [0, 4], data: new Float32Array(0) },
    { name: 'empty.bf16', dtype: 'bf16', shape: [3, 0], data: new Uint16Array(0) },
  ];
}

function expectSameBytes(t: Tensor, data: ArrayBufferView): void {
  expect(Buffer.from(bytesOf(t.toArrayRaw()))).toEqual(Buffer.from(bytesOf(data)));
}

// The reference implementation (Python safetensors 0.8.0, safetensors.numpy.save)
// writing: ids.i64 int64 [1, -2^40], empty f32 (0,2), scalar f32 3.5,
// w.f32 f32 [[1.5,-2.25,3],[0.125,-0.5,1e-3]], ids.i32 int32 [7,-8,2^31-1],
// w.f16 f16 [0.5, 65504, -1e-5], metadata {format: np}.
const REFERENCE_FILE_B64 =
  'kAEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJucCJ9LCJpZHMuaTY0Ijp7ImR0eXBlIjoiSTY0Iiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbMCwxNl19LCJlbXB0eSI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMCwyXSwiZGF0YV9vZmZzZXRzIjpbMTYsMTZdfSwic2NhbGFyIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOlsxNiwyMF19LCJ3LmYzMiI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMiwzXSwiZGF0YV9vZmZzZXRzIjpbMjAsNDRdfSwiaWRzLmkzMiI6eyJkdHlwZSI6IkkzMiIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzQ0LDU2XX0sIncuZjE2Ijp7ImR0eXBlIjoiRjE2Iiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNTYsNjJdfX0gICAgICAgAQAAAAAAAAAAAAAAAP///wAAYEAAAMA/AAAQwAAAQEAAAAA+AAAAv28SgzoHAAAA+P///////38AOP97qIA=';

describe('safetensors format', () => {
  it('reads a file written by the reference implementation', () => {
    const file = path.join(freshDir(), 'ref.safetensors');
    writeFileSync(file, Buffer.from(REFERENCE_FILE_B64, 'base64'));
    using f = openSafetensors(file);
    expect(f.metadata).toEqual({ format: 'np' });
    expect(f.names()).toEqual(['ids.i64', 'empty', 'scalar', 'w.f32', 'ids.i32', 'w.f16']);
    expect(f.info('w.f32')).toMatchObject({ dtype: 'F32', shape: [2, 3], byteLength: 24, file });
    const get = (n: string) => {
      const t = f.load(n, { device: 'cpu' });
      const v = t.toArray();
      t.dispose();
      return Array.from(v as ArrayLike<number | bigint>);
    };
    expect(get('ids.i64')).toEqual([1n, -(2n ** 40n)]);
    expect(get('ids.i32')).toEqual([7, -8, 2147483647]);
    expect(get('scalar')).toEqual([3.5]);
    expect(get('empty')).toEqual([]);
    expect(get('w.f32')).toEqual([1.5, -2.25, 3, 0.125, -0.5, Math.fround(1e-3)]);
    const h = get('w.f16') as number[];
    expect(h.slice(0, 2)).toEqual([0.5, 65504]);
    expect(h[2]).toBeCloseTo(-1e-5, 6);
  });

  it('writes byte for byte what the reference implementation writes', () => {
    const file = path.join(freshDir(), 'ours.safetensors');
    writeSafetensors(
      file,
      [
        // The reference orders by alignment, then by name; the writer keeps the caller's order within an alignment.
        { name: 'ids.i64', dtype: 'i64', shape: [2], data: BigInt64Array.from([1n, -(2n ** 40n)]) },
        { name: 'empty', dtype: 'f32', shape: [0, 2], data: new Float32Array(0) },
        { name: 'scalar', dtype: 'f32', shape: [], data: Float32Array.from([3.5]) },
        { name: 'w.f32', dtype: 'f32', shape: [2, 3], data: Float32Array.from([1.5, -2.25, 3, 0.125, -0.5, 1e-3]) },
        { name: 'w.f16', dtype: 'F16', shape: [3], data: Uint16Array.from([0x3800, 0x7bff, 0x80a8]) },
        { name: 'ids.i32', dtype: 'i32', shape: [3], data: Int32Array.from([7, -8, 2147483647]) },
      ],
      { format: 'np' },
    );
    expect(readFileSync(file).toString('base64')).toBe(REFERENCE_FILE_B64);
  });

  it('pads the header with spaces to a multiple of 8 and aligns every tensor to its element size', () => {
    const file = path.join(freshDir(), 'm.safetensors');
    writeSafetensors(file, sampleEntries(), { format: 'pt' });
    const buf = readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const text = buf.subarray(8, 8 + n).toString('utf8');
    expect(text.trimEnd().endsWith('}')).toBe(true);
    expect(/^[ ]*$/.test(text.slice(text.trimEnd().length))).toBe(true);
    const header = JSON.parse(text) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    expect(header.__metadata__).toEqual({ format: 'pt' });
    const size = { BF16: 2, F16: 2, F32: 4, I32: 4, I64: 8 } as Record<string, number>;
    let end = 0;
    for (const [name, e] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      expect(e.data_offsets[0] % size[e.dtype]!, name).toBe(0);
      end = Math.max(end, e.data_offsets[1]);
    }
    expect(buf.length).toBe(8 + n + end);
  });
});

describe.each(devices)('safetensors round trip on %s', (device) => {
  it('round-trips several dtypes and shapes, including a scalar and empty tensors', () => {
    const dir = freshDir();
    const entries = sampleEntries();
    const written = writeSafetensors(path.join(dir, 'model.safetensors'), entries, { format: 'pt' });
    expect(written).toBe(entries.reduce((a, e) => a + e.data.byteLength, 0));
    using ckpt = openCheckpoint(dir);
    expect(ckpt.names().sort()).toEqual(entries.map((e) => e.name).sort());
    expect(ckpt.metadata).toEqual({ format: 'pt' });
    for (const e of entries) {
      const info = ckpt.info(e.name);
      expect(info.shape).toEqual(e.shape);
      expect(info.file).toBe(path.join(dir, 'model.safetensors'));
      const t = ckpt.load(e.name, { device, expectShape: e.shape });
      expect(t.device).toBe(device);
      expect(t.dtype).toBe(e.dtype);
      expect(t.shape).toEqual(e.shape);
      expectSameBytes(t, e.data);
      t.dispose();
    }
  });

  it('round-trips tensors written by chunk producers', () => {
    const file = path.join(freshDir(), 'c.safetensors');
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    writeSafetensors(file, [
      {
        name: 'x',
        dtype: 'f32',
        shape: [10, 100],
        chunks: function* () {
          for (let i = 0; i < 1000; i += 33) yield values.subarray(i, Math.min(i + 33, 1000));
        },
      },
    ]);
    using f = openSafetensors(file, { chunkBytes: 100 });
    using t = f.load('x', { device });
    expect(t.toNumbers()).toEqual(Array.from(values));
  });

  it('loads with a tiny chunk size exactly what it loads with the default', () => {
    const dir = freshDir();
    const entries = sampleEntries();
    // One larger tensor so that many chunks are needed.
    const big = Float32Array.from({ length: 4099 }, (_, i) => (i * 7919) % 1013 - 500.5);
    entries.push({ name: 'big', dtype: 'f32', shape: [4099], data: big });
    writeSafetensors(path.join(dir, 'model.safetensors'), entries);
    for (const chunkBytes of [1, 7, 64]) {
      using ckpt = openCheckpoint(dir, { chunkBytes });
      for (const e of entries) {
        using t = ckpt.load(e.name, { device });
        expectSameBytes(t, e.data);
      }
      // Chunked conversion: element-aligned steps even when the chunk is not.
      using asBf16 = ckpt.load('big', { device, dtype: 'bf16' });
      using ref = Tensor.fromArray(big, [4099], { dtype: 'bf16', device });
      expectSameBytes(asBf16, ref.toArrayRaw());
      using asF32 = ckpt.load('model.embed_tokens.weight', { device, dtype: 'f32' });
      using refF32 = Tensor.fromArray(entries[0]!.data as Uint16Array, [5, 3], { dtype: 'bf16', device });
      expect(asF32.toNumbers()).toEqual(refF32.toNumbers());
    }
  });

  it('converts a bf16 file to f32 (and other dtype changes) on load', () => {
    const file = path.join(freshDir(), 'b.safetensors');
    // bf16 bits of exactly representable values: 1, -2, 0.5, 3.140625, -0.0078125, 0
    const bits = Uint16Array.from([0x3f80, 0xc000, 0x3f00, 0x4049, 0xbc00, 0x0000]);
    writeSafetensors(file, [
      { name: 'w', dtype: 'bf16', shape: [2, 3], data: bits },
      { name: 'f', dtype: 'f32', shape: [3], data: Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, -7.75]) },
      { name: 'i', dtype: 'i32', shape: [2], data: Int32Array.from([3, -4]) },
    ]);
    using f = openSafetensors(file, { chunkBytes: 4 });
    using w = f.load('w', { device, dtype: 'f32' });
    expect(w.dtype).toBe('f32');
    expect(w.shape).toEqual([2, 3]);
    expect(Array.from(w.toArrayRaw() as Float32Array)).toEqual([1, -2, 0.5, 3.140625, -0.0078125, 0]);
    using fb = f.load('f', { device, dtype: 'bf16' });
    expect(fb.toNumbers()).toEqual([1, 1 + 4 * 2 ** -8, -7.75]); // round to nearest even
    using fi = f.load('i', { device, dtype: 'i64' });
    expect(fi.dtype).toBe('i64');
    expect(Array.from(fi.toArray() as BigInt64Array)).toEqual([3n, -4n]);
  });

  it('round-trips a sharded checkpoint', () => {
    const dir = freshDir();
    const entries = sampleEntries();
    const shards = [entries.slice(0, 3), entries.slice(3)];
    const weightMap: Record<string, string> = {};
    let total = 0;
    shards.forEach((list, i) => {
      const name = `model-0000${i + 1}-of-00002.safetensors`;
      total += writeSafetensors(path.join(dir, name), list, { format: 'pt' });
      for (const e of list) weightMap[e.name] = name;
    });
    // A tensor present in a shard but absent from the index is not part of the checkpoint.
    writeSafetensors(path.join(dir, 'model-00003-of-00002.safetensors'), [{ name: 'stray', dtype: 'f32', shape: [1], data: new Float32Array(1) }]);
    const indexFile = writeShardIndex(dir, weightMap, total);
    expect(JSON.parse(readFileSync(indexFile, 'utf8'))).toEqual({ metadata: { total_size: total }, weight_map: weightMap });
    using ckpt = openCheckpoint(dir);
    expect(ckpt.indexFile).toBe(path.join(dir, INDEX_FILE));
    expect(ckpt.files.map((f) => path.basename(f)).sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(ckpt.names().sort()).toEqual(entries.map((e) => e.name).sort());
    expect(ckpt.has('stray')).toBe(false);
    expect(ckpt.totalBytes).toBe(total);
    for (const e of entries) {
      expect(ckpt.info(e.name).file).toBe(path.join(dir, weightMap[e.name]!));
      using t = ckpt.load(e.name, { device });
      expectSameBytes(t, e.data);
    }
  });
});

describe('checkpoint files and lifetime', () => {
  it('opens each file once and closes them all', () => {
    const before = fdCount();
    if (before === undefined) return; // no /proc: nothing to count with
    const dir = freshDir();
    const a = sampleEntries().slice(0, 4), b = sampleEntries().slice(4);
    writeSafetensors(path.join(dir, 's1.safetensors'), a);
    writeSafetensors(path.join(dir, 's2.safetensors'), b);
    writeShardIndex(dir, new Map([...a.map((e) => [e.name, 's1.safetensors'] as const), ...b.map((e) => [e.name, 's2.safetensors'] as const)]), 0);
    const ckpt = openCheckpoint(dir);
    expect(fdCount()).toBe(before + 2);
    for (const name of ckpt.names()) ckpt.load(name, { device: 'cpu' }).dispose();
    expect(fdCount()).toBe(before + 2); // loading opens nothing more
    ckpt.close();
    expect(fdCount()).toBe(before);
    ckpt.close(); // idempotent
    expect(errorOf(() => ckpt.load('scalar', { device: 'cpu' })).message).toMatch(/closed/);
  });

  it('opens a .safetensors file given directly', () => {
    const file = path.join(freshDir(), 'weights.safetensors');
    writeSafetensors(file, sampleEntries());
    using ckpt = openCheckpoint(file);
    expect(ckpt.files).toEqual([file]);
    using t = ckpt.load('scalar', { device: 'cpu' });
    expect(t.item()).toBe(3.5);
  });

  it('removes a partial file when a producer gives the wrong number of bytes', () => {
    const file = path.join(freshDir(), 'bad.safetensors');
    const err = errorOf(() =>
      writeSafetensors(file, [{ name: 'w', dtype: 'bf16', shape: [4], chunks: () => [new Uint16Array(3)] }]),
    );
    expect(err.message).toContain(file);
    expect(err.message).toContain('"w"');
    expect(err.message).toMatch(/6 bytes.*needs 8/);
    expect(existsSync(file)).toBe(false);
    const err2 = errorOf(() => writeSafetensors(file, [{ name: 'w', dtype: 'f32', shape: [2, 2], data: new Float32Array(3) }]));
    expect(err2.message).toMatch(/"w".*12 bytes.*needs 16/);
  });
});

describe('corrupt and mismatched checkpoints give errors that name the file and tensor', () => {
  const f32x4 = new Uint8Array(16);

  it('truncated file', () => {
    const file = path.join(freshDir(), 'model.safetensors');
    writeSafetensors(file, [
      { name: 'a', dtype: 'f32', shape: [4], data: new Float32Array(4) },
      { name: 'last.weight', dtype: 'f32', shape: [8], data: new Float32Array(8) },
    ]);
    truncateSync(file, statSync(file).size - 5);
    const err = errorOf(() => openSafetensors(file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('"last.weight"');
    expect(err.message).toMatch(/truncated/);
    // Cut inside the header too.
    truncateSync(file, 20);
    const err2 = errorOf(() => openCheckpoint(path.dirname(file)));
    expect(err2.message).toContain(file);
    expect(err2.message).toMatch(/header length \d+ is larger than the file/);
    truncateSync(file, 5);
    expect(errorOf(() => openSafetensors(file)).message).toContain(file);
  });

  it('header length larger than the file', () => {
    const file = rawFile(path.join(freshDir(), 'x.safetensors'), { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32x4, 1_000_000n);
    const err = errorOf(() => openSafetensors(file));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/header length 1000000 is larger than the file/);
    // A u64 no Number can hold.
    rawFile(file, '{}', f32x4, 2n ** 63n + 5n);
    expect(errorOf(() => openSafetensors(file)).message).toContain(file);
  });

  it('invalid JSON header', () => {
    const file = rawFile(path.join(freshDir(), 'x.safetensors'), '{"a": {"dtype": "F32", "shape": [4], ', f32x4);
    const err = errorOf(() => openSafetensors(file));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/not valid JSON/);
    rawFile(file, '[1, 2]', f32x4);
    expect(errorOf(() => openSafetensors(file)).message).toMatch(/must be a JSON object/);
  });

  it('unknown dtype, and a known one the engine cannot hold', () => {
    const file = rawFile(path.join(freshDir(), 'x.safetensors'), { 'blk.q4': { dtype: 'Q4_K', shape: [4], data_offsets: [0, 16] } }, f32x4);
    const err = errorOf(() => openSafetensors(file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('"blk.q4"');
    expect(err.message).toContain('Q4_K');
    // F64 is valid safetensors: the file opens, other tensors load, that one fails naming its dtype.
    rawFile(
      file,
      { d: { dtype: 'F64', shape: [2], data_offsets: [0, 16] }, ok: { dtype: 'F32', shape: [1], data_offsets: [16, 20] } },
      new Uint8Array(20),
    );
    using f = openSafetensors(file);
    using ok = f.load('ok', { device: 'cpu' });
    expect(ok.toNumbers()).toEqual([0]);
    const err2 = errorOf(() => f.load('d', { device: 'cpu' }));
    expect(err2.message).toContain(file);
    expect(err2.message).toContain('"d"');
    expect(err2.message).toContain('F64');
  });

  it('bad shapes and malformed entries', () => {
    const file = path.join(freshDir(), 'x.safetensors');
    rawFile(file, { neg: { dtype: 'F32', shape: [-1, 4], data_offsets: [0, 16] } }, f32x4);
    expect(errorOf(() => openSafetensors(file)).message).toMatch(new RegExp(`${file.replace(/[.]/g, '\\.')}.*"neg".*shape`));
    rawFile(file, { frac: { dtype: 'F32', shape: [1.5], data_offsets: [0, 16] } }, f32x4);
    expect(errorOf(() => openSafetensors(file)).message).toMatch(/"frac".*non-negative integers/);
    rawFile(file, { noOff: { dtype: 'F32', shape: [4] } }, f32x4);
    expect(errorOf(() => openSafetensors(file)).message).toMatch(/"noOff".*data_offsets/);
  });

  it('offsets out of range', () => {
    const file = rawFile(
      path.join(freshDir(), 'x.safetensors'),
      { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, 'far.weight': { dtype: 'F32', shape: [4], data_offsets: [64, 80] } },
      f32x4,
    );
    const err = errorOf(() => openSafetensors(file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('"far.weight"');
    expect(err.message).toMatch(/\[64, 80\].*16 bytes/);
    rawFile(file, { back: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, f32x4);
    expect(errorOf(() => openSafetensors(file)).message).toMatch(/"back".*end before they begin/);
  });

  it('offsets inconsistent with the shape', () => {
    const file = rawFile(path.join(freshDir(), 'x.safetensors'), { 'w.q': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, f32x4);
    const err = errorOf(() => openSafetensors(file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('"w.q"');
    expect(err.message).toMatch(/12 bytes.*F32 \[2, 2\] needs 4 x 4 = 16/);
  });

  it('overlapping tensors', () => {
    const file = rawFile(
      path.join(freshDir(), 'x.safetensors'),
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        empty: { dtype: 'F32', shape: [0], data_offsets: [4, 4] }, // empty ranges overlap nothing
        b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
        c: { dtype: 'I32', shape: [2], data_offsets: [12, 20] },
      },
      new Uint8Array(20),
    );
    const err = errorOf(() => openSafetensors(file));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/"b" \[8, 16\) and "c" \[12, 20\) overlap/);
  });

  it('missing tensor lists close names', () => {
    const dir = freshDir();
    const names = ['model.layers.0.mlp.up_proj.weight', 'model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.up_proj.weight', 'lm_head.weight'];
    writeSafetensors(path.join(dir, 'model.safetensors'), names.map((name) => ({ name, dtype: 'f32' as const, shape: [1], data: new Float32Array(1) })));
    using ckpt = openCheckpoint(dir);
    const err = errorOf(() => ckpt.load('model.layers.0.mlp.up_proj.weigth', { device: 'cpu' }));
    expect(err.message).toContain(path.join(dir, 'model.safetensors'));
    expect(err.message).toContain('"model.layers.0.mlp.up_proj.weigth"');
    expect(err.message).toMatch(/closest names: "model\.layers\.0\.mlp\.up_proj\.weight"/);
    expect(errorOf(() => ckpt.info('lm_head')).message).toMatch(/closest names: "lm_head\.weight"/);
  });

  it('wrong expected shape names both shapes', () => {
    const dir = freshDir();
    writeSafetensors(path.join(dir, 'model.safetensors'), sampleEntries());
    using ckpt = openCheckpoint(dir);
    const err = errorOf(() => ckpt.load('model.embed_tokens.weight', { device: 'cpu', expectShape: [3, 5] }));
    expect(err.message).toContain(path.join(dir, 'model.safetensors'));
    expect(err.message).toContain('"model.embed_tokens.weight"');
    expect(err.message).toContain('[5, 3]');
    expect(err.message).toContain('[3, 5]');
    expect(errorOf(() => ckpt.load('scalar', { device: 'cpu', expectShape: [1] })).message).toMatch(/shape \[\] does not match the expected \[1\]/);
  });

  it('index pointing at a missing shard, or at a shard without the tensor', () => {
    const dir = freshDir();
    writeSafetensors(path.join(dir, 'a.safetensors'), [{ name: 'x', dtype: 'f32', shape: [1], data: new Float32Array(1) }]);
    writeShardIndex(dir, { x: 'a.safetensors', 'y.weight': 'b.safetensors' }, 8);
    const err = errorOf(() => openCheckpoint(dir));
    expect(err.message).toContain(path.join(dir, INDEX_FILE));
    expect(err.message).toContain('"y.weight"');
    expect(err.message).toContain('b.safetensors');
    writeShardIndex(dir, { x: 'a.safetensors', 'y.weight': 'a.safetensors' }, 8);
    const err2 = errorOf(() => openCheckpoint(dir));
    expect(err2.message).toMatch(/"y\.weight" is mapped to .*a\.safetensors, which does not contain it/);
    writeFileSync(path.join(dir, INDEX_FILE), '{"weight_map": ');
    expect(errorOf(() => openCheckpoint(dir)).message).toMatch(/model\.safetensors\.index\.json: not a valid index/);
    writeFileSync(path.join(dir, INDEX_FILE), '{"metadata": {}}');
    expect(errorOf(() => openCheckpoint(dir)).message).toMatch(/"weight_map" must be an object/);
  });

  it('a folder with no checkpoint', () => {
    const dir = freshDir();
    expect(errorOf(() => openCheckpoint(dir)).message).toContain(dir);
    expect(errorOf(() => openCheckpoint(path.join(dir, 'nope'))).message).toContain(path.join(dir, 'nope'));
  });
});

// ---------------------------------------------------------------- 1.2 GB, opt-in

const BIG = process.env.AIOS_BIG_TESTS === '1';

describe.skipIf(!BIG)('safetensors at Qwen3-0.6B scale (AIOS_BIG_TESTS=1)', () => {
  it('writes and loads a ~1.2 GB bf16 checkpoint in seconds', { timeout: 600_000 }, () => {
    const device: Device = devices[devices.length - 1]!;
    const dir = freshDir();
    // Qwen3-0.6B's large matrices: the embedding, then per layer q/k/v/o and gate/up/down.
    const shapes: [string, number[]][] = [['model.embed_tokens.weight', [151936, 1024]]];
    for (let l = 0; l < 28; l++) {
      const p = `model.layers.${l}.`;
      shapes.push([`${p}self_attn.q_proj.weight`, [2048, 1024]], [`${p}self_attn.k_proj.weight`, [1024, 1024]]);
      shapes.push([`${p}self_attn.v_proj.weight`, [1024, 1024]], [`${p}self_attn.o_proj.weight`, [1024, 2048]]);
      shapes.push([`${p}mlp.gate_proj.weight`, [3072, 1024]], [`${p}mlp.up_proj.weight`, [3072, 1024]], [`${p}mlp.down_proj.weight`, [1024, 3072]]);
    }
    // A cheap pattern that differs per tensor and per element: bits(i) = (seed + i * 40503) & 0x7fff.
    const pattern = (seed: number, from: number, n: number): Uint16Array => {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = (seed + (from + i) * 40503) & 0x7fff;
      return out;
    };
    const chunkElems = 4 << 20;
    const entries: SafetensorsEntry[] = shapes.map(([name, shape], k) => ({
      name,
      dtype: 'bf16',
      shape,
      chunks: function* () {
        const numel = shape.reduce((a, b) => a * b, 1);
        for (let i = 0; i < numel; i += chunkElems) yield pattern(k * 977, i, Math.min(chunkElems, numel - i));
      },
    }));
    const file = path.join(dir, 'model.safetensors');
    let t0 = performance.now();
    const bytes = writeSafetensors(file, entries);
    const writeS = (performance.now() - t0) / 1000;
    const mb = bytes / 1e6;

    const heapBefore = process.memoryUsage();
    t0 = performance.now();
    const loaded: Tensor[] = [];
    using ckpt = openCheckpoint(dir);
    for (const [name, shape] of shapes) loaded.push(ckpt.load(name, { device, expectShape: shape }));
    if (device !== 'cpu') synchronize(device);
    const loadS = (performance.now() - t0) / 1000;
    const heapAfter = process.memoryUsage();

    // Spot-check the first and last elements of every tensor.
    shapes.forEach(([, shape], k) => {
      const t = loaded[k]!;
      const flat = t.view(-1);
      const n = t.numel;
      for (const start of [0, n - 1000]) {
        const got = flat.narrow(0, start, 1000).contiguous().toArrayRaw();
        expect(Buffer.from(bytesOf(got))).toEqual(Buffer.from(bytesOf(pattern(k * 977, start, 1000))));
      }
      expect(t.shape).toEqual(shape);
    });
    for (const t of loaded) t.dispose();
    loaded.length = 0;

    // Again, now that the caching allocator holds the memory: the first load above
    // also paid for fresh memory (on the CPU backend, the kernel's first-touch page faults).
    t0 = performance.now();
    for (const [name] of shapes) loaded.push(ckpt.load(name, { device }));
    if (device !== 'cpu') synchronize(device);
    const reloadS = (performance.now() - t0) / 1000;
    for (const t of loaded) t.dispose();

    // The conversion path too: the same file loaded as f32.
    t0 = performance.now();
    for (const [name] of shapes) ckpt.load(name, { device, dtype: 'f32' }).dispose();
    if (device !== 'cpu') synchronize(device);
    const convertS = (performance.now() - t0) / 1000;

    const rate = (s: number) => `${s.toFixed(2)} s (${(mb / s).toFixed(0)} MB/s)`;
    console.log(
      `safetensors ${mb.toFixed(0)} MB bf16 on ${device}, file in the page cache: write ${rate(writeS)}; ` +
        `load into fresh memory ${rate(loadS)}; load again (allocator warm) ${rate(reloadS)}; load as f32 ${rate(convertS)}; ` +
        `JS heap +${((heapAfter.heapUsed - heapBefore.heapUsed) / 1e6).toFixed(0)} MB, ArrayBuffers +${((heapAfter.arrayBuffers - heapBefore.arrayBuffers) / 1e6).toFixed(0)} MB during load`,
    );
    expect(bytes).toBeGreaterThan(1.1e9);
    // The whole file never sits in the JS heap: the load used about one chunk buffer.
    expect(heapAfter.arrayBuffers - heapBefore.arrayBuffers).toBeLessThan(200e6);
    expect(loadS).toBeLessThan(60);
  });
});
