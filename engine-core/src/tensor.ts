// Tensor: a dtype, a shape and strides over a native Storage on one device.
// Views (view, narrow, select, transpose) share the storage and copy nothing.
// Only the tensor that allocated a storage owns it: dispose() on the owner
// frees the memory at once (back to the caching allocator), dispose() on a
// view only retires that view. A storage nobody disposed is freed by the
// garbage collector's finalizer, later and at an unknown time.
import type { Storage } from '@aios/native';

import { type Device, defaultDevice, deviceFromIndex, deviceIndex, native } from './backend.ts';
import { type DType, type HostArray, assertDType, dtypeCode, dtypeSize, isFloat } from './dtype.ts';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
}

export type HostData = number[] | Float32Array | Int32Array | BigInt64Array | Uint16Array;

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

function checkShape(shape: readonly number[], what: string): void {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: shape must be an array of sizes`);
  for (const s of shape)
    if (!Number.isInteger(s) || s < 0) throw new RangeError(`${what}: shape [${shape.join(', ')}] has an invalid size ${s}`);
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * A storage and whether it was freed, shared by the owner and its views. The
 * flag lives in JS so that the checks on every op's path cost no N-API call.
 */
interface StorageCell {
  readonly storage: Storage;
  readonly device: Device;
  freed: boolean;
}

export class Tensor {
  #retired = false;
  /** Element count and contiguity, fixed at construction (shape and strides never change). */
  readonly numel: number;
  readonly #contiguous: boolean;

  private constructor(
    private readonly cell: StorageCell,
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
    /** Offset of the first element, in elements. */
    readonly offset: number,
    /** True for the tensor that allocated the storage. */
    readonly ownsStorage: boolean,
  ) {
    this.numel = numelOf(shape);
    let expect = 1, contiguous = true;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (shape[d] !== 1 && strides[d] !== expect) contiguous = false;
      expect *= shape[d]!;
    }
    this.#contiguous = contiguous;
  }

  // ------------------------------------------------------------ creation

  /** An uninitialized tensor. */
  static empty(shape: readonly number[], opts: TensorOptions = {}): Tensor {
    checkShape(shape, 'Tensor.empty');
    const dtype = assertDType(opts.dtype ?? 'f32');
    const device = opts.device ?? defaultDevice();
    const storage = new native.Storage(numelOf(shape) * dtypeSize(dtype), deviceIndex(device));
    const cell: StorageCell = { storage, device: deviceFromIndex(storage.device), freed: false };
    return new Tensor(cell, dtype, [...shape], contiguousStrides(shape), 0, true);
  }

  static full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
    const t = Tensor.empty(shape, opts);
    native.fill(dtypeCode(t.dtype), t.numel, value, t.storage, 0);
    return t;
  }

  static zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
    return Tensor.full(shape, 0, opts);
  }

  /**
   * A tensor holding `data`. Float data for bf16/f16 is converted on the device
   * (by the same cast kernel the engine uses); a Uint16Array is taken as raw
   * bf16/f16 bits, as stored in checkpoints.
   */
  static fromArray(data: HostData, shape?: readonly number[], opts: TensorOptions = {}): Tensor {
    const dtype = assertDType(opts.dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof BigInt64Array ? 'i64' : 'f32'));
    const dims = shape ?? [data.length];
    checkShape(dims, 'Tensor.fromArray');
    if (numelOf(dims) !== data.length)
      throw new RangeError(`Tensor.fromArray: ${data.length} values do not fill shape ${formatShape(dims)} (${numelOf(dims)} elements)`);
    const t = Tensor.empty(dims, { dtype, device: opts.device });
    try {
      t.write(data);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /** Overwrites this (contiguous) tensor with host data; see fromArray for the accepted forms. */
  write(data: HostData): this {
    this.#checkAlive('write');
    if (!this.isContiguous()) throw new Error('write: the tensor must be contiguous');
    if (data.length !== this.numel)
      throw new RangeError(`write: ${data.length} values for a tensor of ${this.numel} elements`);
    const dt = this.dtype;
    if (data instanceof Uint16Array) {
      if (dt !== 'bf16' && dt !== 'f16') throw new TypeError(`write: a Uint16Array holds bf16/f16 bits, not ${dt}`);
      this.storage.copyFromHost(data, this.byteOffset);
      return this;
    }
    if (dt === 'i64') {
      const arr = data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data as ArrayLike<number>, (v) => BigInt(v)));
      this.storage.copyFromHost(arr, this.byteOffset);
      return this;
    }
    if (dt === 'i32') {
      const arr = data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>, Number);
      this.storage.copyFromHost(arr, this.byteOffset);
      return this;
    }
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number | bigint>, Number);
    if (dt === 'f32') {
      this.storage.copyFromHost(f32, this.byteOffset);
      return this;
    }
    // bf16 / f16: stage as f32 on the same device, then cast there.
    const staging = Tensor.empty(this.shape, { dtype: 'f32', device: this.device });
    try {
      staging.storage.copyFromHost(f32, 0);
      copyInto(staging, this);
    } finally {
      staging.dispose();
    }
    return this;
  }

  // ------------------------------------------------------------ properties

  /** The native storage, shared with every view of it. */
  get storage(): Storage {
    return this.cell.storage;
  }
  get device(): Device {
    return this.cell.device;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get itemSize(): number {
    return dtypeSize(this.dtype);
  }
  get byteOffset(): number {
    return this.offset * this.itemSize;
  }
  get disposed(): boolean {
    return this.#retired || this.cell.freed;
  }

  isContiguous(): boolean {
    return this.#contiguous;
  }

  size(dim: number): number {
    return this.shape[this.#dim(dim, 'size')]!;
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device}${this.disposed ? ', disposed' : ''})`;
  }

  // ------------------------------------------------------------ views (no copies)

  /** The same elements with another shape; one size may be -1. The tensor must be contiguous. */
  view(...shape: number[] | [readonly number[]]): Tensor {
    this.#checkAlive('view');
    const dims = (Array.isArray(shape[0]) ? [...(shape[0] as readonly number[])] : (shape as number[])).slice();
    const infer = dims.indexOf(-1);
    if (infer >= 0) {
      const known = dims.reduce((a, b, i) => (i === infer ? a : a * b), 1);
      if (known === 0 || this.numel % known !== 0)
        throw new RangeError(`view: cannot infer -1 in ${formatShape(dims)} for ${this.numel} elements`);
      dims[infer] = this.numel / known;
    }
    checkShape(dims, 'view');
    if (numelOf(dims) !== this.numel)
      throw new RangeError(`view: shape ${formatShape(dims)} has ${numelOf(dims)} elements, the tensor ${formatShape(this.shape)} has ${this.numel}`);
    if (!this.isContiguous()) throw new Error(`view: ${this} is not contiguous; call contiguous() first`);
    return new Tensor(this.cell, this.dtype, dims, contiguousStrides(dims), this.offset, false);
  }

  /** Elements [start, start + length) along `dim`. */
  narrow(dim: number, start: number, length: number): Tensor {
    this.#checkAlive('narrow');
    const d = this.#dim(dim, 'narrow');
    const size = this.shape[d]!;
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > size)
      throw new RangeError(`narrow: [${start}, ${start + length}) is outside dim ${d} of size ${size}`);
    const shape = [...this.shape];
    shape[d] = length;
    return new Tensor(this.cell, this.dtype, shape, this.strides, this.offset + start * this.strides[d]!, false);
  }

  /** The slice at `index` along `dim`, with that dim removed. */
  select(dim: number, index: number): Tensor {
    const d = this.#dim(dim, 'select');
    const n = this.narrow(d, index, 1);
    const shape = n.shape.filter((_, i) => i !== d);
    const strides = n.strides.filter((_, i) => i !== d);
    return new Tensor(this.cell, this.dtype, shape, strides, n.offset, false);
  }

  transpose(dim0: number, dim1: number): Tensor {
    this.#checkAlive('transpose');
    const a = this.#dim(dim0, 'transpose'), b = this.#dim(dim1, 'transpose');
    const shape = [...this.shape], strides = [...this.strides];
    [shape[a], shape[b]] = [shape[b]!, shape[a]!];
    [strides[a], strides[b]] = [strides[b]!, strides[a]!];
    return new Tensor(this.cell, this.dtype, shape, strides, this.offset, false);
  }

  // ------------------------------------------------------------ copies

  /** This tensor if contiguous, else a contiguous copy. */
  contiguous(): Tensor {
    this.#checkAlive('contiguous');
    return this.isContiguous() ? this : this.clone();
  }

  clone(opts: TensorOptions = {}): Tensor {
    this.#checkAlive('clone');
    const out = Tensor.empty(this.shape, { dtype: opts.dtype ?? this.dtype, device: opts.device ?? this.device });
    try {
      if (out.device === this.device) copyInto(this, out);
      else if (out.dtype === this.dtype) out.write(this.toArrayRaw());
      else {
        const moved = this.clone({ device: out.device }); // move first, then cast on the target device
        copyInto(moved, out);
        moved.dispose();
      }
    } catch (e) {
      out.dispose();
      throw e;
    }
    return out;
  }

  /** A copy on another device or with another dtype (this tensor when nothing changes). */
  to(target: Device | DType): Tensor {
    const isDtype = ['bf16', 'f16', 'f32', 'i32', 'i64'].includes(target);
    const dtype = isDtype ? (target as DType) : this.dtype;
    const device = isDtype ? this.device : (target as Device);
    if (dtype === this.dtype && device === this.device) return this;
    if (device === this.device) return this.clone({ dtype });
    const moved = this.clone({ device });
    if (dtype === this.dtype) return moved;
    const cast = moved.clone({ dtype });
    moved.dispose();
    return cast;
  }

  /** Reads the values back: f32 for every float dtype, Int32Array or BigInt64Array for indices. Waits for the device. */
  toArray(): HostArray {
    this.#checkAlive('toArray');
    if (this.dtype === 'bf16' || this.dtype === 'f16') return this.#floatBack();
    return this.toArrayRaw() as HostArray;
  }

  /** As toArray, but waits for the device on a worker thread. */
  async toArrayAsync(): Promise<HostArray> {
    this.#checkAlive('toArrayAsync');
    const src = isFloat(this.dtype) && this.dtype !== 'f32' ? this.clone({ dtype: 'f32' }) : this.contiguous();
    try {
      const out = hostArrayFor(src.dtype, src.numel) as HostArray;
      await src.storage.copyToHostAsync(out, src.byteOffset);
      return out;
    } finally {
      if (src !== this) src.dispose();
    }
  }

  /** The values as plain numbers (i64 through Number()). */
  toNumbers(): number[] {
    return Array.from(this.toArray() as ArrayLike<number | bigint>, Number);
  }

  item(): number {
    if (this.numel !== 1) throw new RangeError(`item: ${this} has ${this.numel} elements, not 1`);
    return this.toNumbers()[0]!;
  }

  /** The stored values with no conversion: bf16/f16 come back as raw bits in a Uint16Array. */
  toArrayRaw(): Float32Array | Int32Array | BigInt64Array | Uint16Array {
    this.#checkAlive('toArray');
    const src = this.contiguous();
    try {
      const out = hostArrayFor(src.dtype, src.numel);
      src.storage.copyToHost(out, src.byteOffset);
      return out;
    } finally {
      if (src !== this) src.dispose();
    }
  }

  // ------------------------------------------------------------ lifetime

  /** Frees the storage if this tensor owns it; a view only stops being usable. Idempotent. */
  dispose(): void {
    if (this.#retired) return;
    this.#retired = true;
    if (this.ownsStorage) {
      this.cell.freed = true;
      this.cell.storage.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ------------------------------------------------------------ helpers

  #floatBack(): Float32Array {
    const f32 = this.clone({ dtype: 'f32' });
    try {
      return f32.toArrayRaw() as Float32Array;
    } finally {
      f32.dispose();
    }
  }

  #dim(dim: number, what: string): number {
    const d = dim < 0 ? dim + this.ndim : dim;
    if (!Number.isInteger(d) || d < 0 || d >= this.ndim)
      throw new RangeError(`${what}: dim ${dim} is out of range for ${this.ndim}-d tensor ${formatShape(this.shape)}`);
    return d;
  }

  #checkAlive(what: string): void {
    if (this.disposed) throw new Error(`${what}: ${this} was disposed`);
  }
}

function hostArrayFor(dt: DType, n: number): Float32Array | Int32Array | BigInt64Array | Uint16Array {
  switch (dt) {
    case 'f32':
      return new Float32Array(n);
    case 'i32':
      return new Int32Array(n);
    case 'i64':
      return new BigInt64Array(n);
    default:
      return new Uint16Array(n);
  }
}

/**
 * dst[...] = src[...] over any strides, casting between dtypes (the one
 * strided-copy kernel behind contiguous(), casts and concat).
 */
export function copyInto(src: Tensor, dst: Tensor): void {
  if (src.disposed) throw new Error(`copy: source ${src} was disposed`);
  if (dst.disposed) throw new Error(`copy: destination ${dst} was disposed`);
  if (src.device !== dst.device) throw new Error(`copy: source is on ${src.device}, destination on ${dst.device}`);
  if (src.shape.length !== dst.shape.length || src.shape.some((s, i) => s !== dst.shape[i]))
    throw new RangeError(`copy: shapes differ: ${formatShape(src.shape)} vs ${formatShape(dst.shape)}`);
  if (src.numel === 0) return;
  // Rank 0 copies as rank 1 of one element.
  const shape = src.ndim === 0 ? [1] : src.shape;
  const ss = src.ndim === 0 ? [1] : src.strides;
  const ds = dst.ndim === 0 ? [1] : dst.strides;
  if (shape.length > 8) throw new RangeError(`copy: rank ${shape.length} is over the addon's limit of 8`);
  native.copyStrided(
    shape.length,
    ...shape,
    dtypeCode(src.dtype),
    ...ss,
    src.storage,
    src.byteOffset,
    dtypeCode(dst.dtype),
    ...ds,
    dst.storage,
    dst.byteOffset,
  );
}
