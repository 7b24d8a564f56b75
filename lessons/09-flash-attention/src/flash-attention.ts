// Lesson 09's attention op for the batched runtime: a step with more than one
// query per sequence somewhere (a prefill, a prefill over a cached prefix)
// goes to the FlashAttention prefill kernel on tensor cores; a decode step (one
// query per sequence) to the split-KV decode kernel. Both read the paged pool
// through the block tables, as lesson 07's kernel did; the newest version of
// each by default (native/src/flash.h lists them).
import { type DType, ops } from '@aios/engine-core';
import { FLASH_DECODE_VERSIONS, FLASH_PREFILL_VERSIONS } from '@aios/engine-core/ops.ts';
import { type PagedAttentionOp, straightforwardAttention } from '@aios/lesson-07-batching';

/** The head sizes the FlashAttention kernels are instantiated for (native/src/flash.h); Qwen3 uses 128. */
export const FLASH_HEAD_DIMS: readonly number[] = [64, 128, 256];

export interface FlashVersions {
  prefill?: number;
  decode?: number;
}

/**
 * The newest version of each kernel for a dtype: the tensor-core versions take bf16 and f16 only,
 * so an f32 model (the CPU reference path, or a float32 GPU run) gets the scalar ones.
 */
export function defaultVersions(dtype: DType): Required<FlashVersions> {
  return dtype === 'f32' ? { prefill: 1, decode: 2 } : { prefill: FLASH_PREFILL_VERSIONS.at(-1)!, decode: FLASH_DECODE_VERSIONS.at(-1)! };
}

/** The op, for given kernel versions (by default the newest the model's dtype allows). */
export function flashAttentionOp(versions: FlashVersions = {}): PagedAttentionOp {
  // Resolved once per dtype: the op runs in every layer of every step.
  const resolved = new Map<DType, Required<FlashVersions>>();
  const pick = (dtype: DType): Required<FlashVersions> => {
    let v = resolved.get(dtype);
    if (!v) resolved.set(dtype, (v = { ...defaultVersions(dtype), ...versions }));
    return v;
  };
  const op: PagedAttentionOp = (q, k, v, meta, out, workspace) => {
    // A head size the kernels are not built for (the tiny test model's 32) runs lesson 07's kernel.
    if (!FLASH_HEAD_DIMS.includes(q.shape[2]!)) return straightforwardAttention(q, k, v, meta, out);
    const ver = pick(q.dtype);
    return meta.maxQLen === 1
      ? ops.flashDecode(q, k, v, meta, out, { version: ver.decode, ...(workspace ? { workspace } : {}) })
      : ops.flashPrefill(q, k, v, meta, out, { version: ver.prefill });
  };
  // The decode kernel splits long contexts over blocks and combines the partial results in a
  // float32 scratch; a forward that must not allocate (lesson 10's) holds one of the largest size
  // any decode step of these limits can ask for.
  op.workspaceBytes = (s) => {
    if (s.device === 'cpu' || !FLASH_HEAD_DIMS.includes(s.headDim)) return 0;
    const version = pick(s.dtype).decode;
    let bytes = 0;
    for (let n = 1; n <= s.maxNumSeqs; n++)
      bytes = Math.max(bytes, ops.flashDecodePlan({ device: s.device, version, numSeqs: n, numTokens: n, qHeads: s.qHeads, kvHeads: s.kvHeads, headDim: s.headDim, maxQLen: 1, maxContextLen: s.maxContextLen }).workspaceBytes);
    return bytes;
  };
  return op;
}

export const flashAttention: PagedAttentionOp = flashAttentionOp();
