// One step's packed input: every token the step runs, from every sequence, in
// one flat list, and the metadata that says where each sequence's tokens are.
// Built on the host from the step plan and uploaded in one copy; the forward
// and every layer's attention read it on the device (nano-vllm's
// prepare_prefill / prepare_decode, vLLM's attention metadata).
//
//   ids, positions, slotMapping   [tokens]      the token, its position in its sequence, its slot in the KV pool
//   cuSeqlensQ                    [seqs + 1]    where each sequence's tokens start in the flat list
//   contextLens                   [seqs]        each sequence's tokens in the pool once this step's are stored
//   lastTokenIndex                [sampled]     the row of each sampling sequence's last token (the LM head runs on these only)
//   blockTables                   [seqs, width] each sequence's block ids, width = the longest table in the step
import { type Device, Tensor } from '@aios/engine-core';
import type { PagedAttentionMeta } from '@aios/engine-core/ops.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { type StepPlan, samplesAt } from '@aios/engine-core/engine/types.ts';

export interface StepInput {
  ids: Tensor;
  positions: Tensor;
  slotMapping: Tensor;
  lastTokenIndex: Tensor;
  meta: PagedAttentionMeta;
  numTokens: number;
  numSampled: number;
}

/**
 * A decode step laid out for a captured graph (lesson 11): every section at an
 * offset that depends only on these sizes, so the graph's baked-in addresses
 * and scalars fit every step of the bucket; the rows past the real sequences
 * are padding (token 0 at position 0, no K/V stored, one key of block 0 read,
 * its logits row ignored).
 */
export interface FixedLayout {
  seqs: number;
  /** Block-table width: blocks of the longest context the layout allows. */
  width: number;
  maxContextLen: number;
}

export interface StepCapacity {
  maxTokens: number;
  maxSeqs: number;
  maxBlocksPerSeq: number;
}

/** Token i of a sequence, prompt then output, without building the joined list. */
function tokenAt(seq: Sequence, i: number): number {
  const p = seq.promptIds.length;
  return i < p ? seq.promptIds[i]! : seq.outputIds[i - p]!;
}

/**
 * A device buffer and its host mirror, sized once for the largest step the
 * engine allows: building a step allocates nothing on the device, and the
 * upload is one copy of exactly the bytes the step uses.
 */
export class StepInputBuffer {
  private readonly device: Tensor;
  private readonly host: Int32Array;

  constructor(
    readonly capacity: StepCapacity,
    readonly blockSize: number,
    device: Device,
  ) {
    const { maxTokens, maxSeqs, maxBlocksPerSeq } = capacity;
    const ints = 3 * maxTokens + 3 * maxSeqs + 1 + maxSeqs * maxBlocksPerSeq;
    this.device = Tensor.empty([ints], { dtype: 'i32', device });
    this.host = new Int32Array(ints);
  }

  build(plan: StepPlan): StepInput {
    const seqs = plan.sequences;
    const tables = plan.blockTables;
    if (!tables || tables.length !== seqs.length) throw new Error(`StepInputBuffer: the plan carries ${tables?.length ?? 'no'} block tables for ${seqs.length} sequences`);
    const B = seqs.length;
    const T = plan.newTokens.reduce((a, b) => a + b, 0);
    const S = seqs.reduce((n, _, i) => n + (samplesAt(plan, i) ? 1 : 0), 0);
    const width = Math.max(1, ...tables.map((t) => t.length));
    const { maxTokens, maxSeqs, maxBlocksPerSeq } = this.capacity;
    if (T > maxTokens || B > maxSeqs || width > maxBlocksPerSeq)
      throw new Error(`StepInputBuffer: a step of ${T} tokens, ${B} sequences and ${width}-block tables exceeds the buffer's ${maxTokens}, ${maxSeqs} and ${maxBlocksPerSeq}`);

    // Sections, packed back to back in the order the comment above lists them.
    const h = this.host;
    const ids = 0, pos = T, slots = 2 * T, cu = 3 * T, ctx = cu + B + 1, last = ctx + B, bt = last + S, end = bt + B * width;
    const bs = this.blockSize;
    let t = 0, s = 0;
    h[cu] = 0;
    seqs.forEach((seq, b) => {
      const start = seq.cachedTokens, n = plan.newTokens[b]!, table = tables[b]!;
      if (n < 1 || start + n > seq.length) throw new Error(`StepInputBuffer: sequence ${seq.id} has ${seq.length} tokens, ${start} cached, and the plan runs ${n} more`);
      if (table.length * bs < start + n) throw new Error(`StepInputBuffer: sequence ${seq.id}'s ${table.length} blocks hold ${table.length * bs} tokens, the step needs ${start + n}`);
      for (let i = 0; i < n; i++, t++) {
        const p = start + i;
        h[ids + t] = tokenAt(seq, p);
        h[pos + t] = p;
        h[slots + t] = table[Math.floor(p / bs)]! * bs + (p % bs);
      }
      h[cu + b + 1] = t;
      h[ctx + b] = start + n;
      if (samplesAt(plan, b)) h[last + s++] = t - 1;
      for (let i = 0; i < width; i++) h[bt + b * width + i] = i < table.length ? table[i]! : -1;
    });
    this.device.narrow(0, 0, end).write(h.subarray(0, end)); // the step's one upload
    const d = this.device;
    let maxQLen = 0, maxContextLen = 0;
    for (let b = 0; b < B; b++) {
      maxQLen = Math.max(maxQLen, plan.newTokens[b]!);
      maxContextLen = Math.max(maxContextLen, h[ctx + b]!);
    }
    return {
      ids: d.narrow(0, ids, T),
      positions: d.narrow(0, pos, T),
      slotMapping: d.narrow(0, slots, T),
      lastTokenIndex: d.narrow(0, last, S),
      meta: {
        cuSeqlensQ: d.narrow(0, cu, B + 1),
        contextLens: d.narrow(0, ctx, B),
        blockTables: d.narrow(0, bt, B * width).view(B, width),
        blockSize: bs,
        maxQLen,
        maxContextLen,
      },
      numTokens: T,
      numSampled: S,
    };
  }

  /**
   * A decode step (one new token per sequence, every one sampling) in a fixed
   * layout; `plan` undefined gives all padding (what a capture or a warm-up runs).
   */
  buildFixed(plan: StepPlan | undefined, layout: FixedLayout): StepInput {
    const { seqs: L, width } = layout;
    const seqs = plan?.sequences ?? [];
    const tables = plan?.blockTables ?? [];
    const B = seqs.length;
    if (B > L || L > this.capacity.maxSeqs || L > this.capacity.maxTokens || width > this.capacity.maxBlocksPerSeq)
      throw new Error(`StepInputBuffer.buildFixed: ${B} sequences in a layout of ${L} rows and ${width}-block tables (capacity ${this.capacity.maxSeqs} sequences, ${this.capacity.maxBlocksPerSeq} blocks)`);
    if (plan && (tables.length !== B || plan.newTokens.some((n, i) => n !== 1 || !samplesAt(plan, i))))
      throw new Error('StepInputBuffer.buildFixed: a fixed layout holds decode steps only (one new, sampled token per sequence, block tables given)');
    const h = this.host, bs = this.blockSize;
    const ids = 0, pos = L, slots = 2 * L, cu = 3 * L, ctx = cu + L + 1, last = ctx + L, bt = last + L, end = bt + L * width;
    h[cu] = 0;
    for (let b = 0; b < L; b++) {
      h[cu + b + 1] = b + 1;
      h[last + b] = b;
      if (b < B) {
        const seq = seqs[b]!, table = tables[b]!, p = seq.cachedTokens;
        if (p + 1 > layout.maxContextLen || table.length > width)
          throw new Error(`StepInputBuffer.buildFixed: sequence ${seq.id} at ${p + 1} tokens and ${table.length} blocks exceeds the layout's ${layout.maxContextLen} tokens and ${width} blocks`);
        h[ids + b] = tokenAt(seq, p);
        h[pos + b] = p;
        h[slots + b] = table[Math.floor(p / bs)]! * bs + (p % bs);
        h[ctx + b] = p + 1;
        for (let i = 0; i < width; i++) h[bt + b * width + i] = i < table.length ? table[i]! : -1;
      } else {
        h[ids + b] = 0;
        h[pos + b] = 0;
        h[slots + b] = -1;
        h[ctx + b] = 1;
        for (let i = 0; i < width; i++) h[bt + b * width + i] = i === 0 ? 0 : -1;
      }
    }
    this.device.narrow(0, 0, end).write(h.subarray(0, end)); // the step's one upload
    const d = this.device;
    return {
      ids: d.narrow(0, ids, L),
      positions: d.narrow(0, pos, L),
      slotMapping: d.narrow(0, slots, L),
      lastTokenIndex: d.narrow(0, last, L),
      meta: {
        cuSeqlensQ: d.narrow(0, cu, L + 1),
        contextLens: d.narrow(0, ctx, L),
        blockTables: d.narrow(0, bt, L * width).view(L, width),
        blockSize: bs,
        maxQLen: 1,
        maxContextLen: layout.maxContextLen,
      },
      numTokens: L,
      numSampled: L,
    };
  }

  dispose(): void {
    this.device.dispose();
  }
}
