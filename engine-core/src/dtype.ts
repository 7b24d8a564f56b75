// The element types tensors hold. The numeric codes match aios::DType in
// native/src/aios.h: they are how a dtype crosses into the addon.

export type DType = 'bf16' | 'f16' | 'f32' | 'i32' | 'i64';

export const DTYPES: readonly DType[] = ['bf16', 'f16', 'f32', 'i32', 'i64'];

const CODES: Record<DType, number> = { bf16: 0, f16: 1, f32: 2, i32: 3, i64: 4 };
const SIZES: Record<DType, number> = { bf16: 2, f16: 2, f32: 4, i32: 4, i64: 8 };

export function dtypeCode(dt: DType): number {
  return CODES[dt];
}

export function dtypeSize(dt: DType): number {
  return SIZES[dt];
}

export function isFloat(dt: DType): boolean {
  return dt === 'bf16' || dt === 'f16' || dt === 'f32';
}

export function isIndex(dt: DType): boolean {
  return dt === 'i32' || dt === 'i64';
}

export function assertDType(value: unknown, what = 'dtype'): DType {
  if (typeof value === 'string' && (DTYPES as readonly string[]).includes(value)) return value as DType;
  throw new TypeError(`${what}: unknown dtype ${JSON.stringify(value)} (expected one of ${DTYPES.join(', ')})`);
}

/** The host array type that holds a dtype's values once read back (bf16 and f16 come back as f32). */
export type HostArray = Float32Array | Int32Array | BigInt64Array;
