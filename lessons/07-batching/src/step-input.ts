// One step's packed input: every token the step runs, from every sequence, in
// one flat list, and the metadata that says where each sequence's tokens are.
// Built on the host from the step plan and uploaded in one copy; the forward
// and every layer's attention read it on the device (nano-vllm's
// prepare_prefill / prepare_decode, vLLM's attention metadata).
//
//   ids, positions, slotMapping   [tokens]      the token, its position in its sequence, its slot in the KV pool
//   cuSeqlensQ                    [seqs + 1]    where each sequence's tokens start in the flat list
//   contextLens                   [seqs]        each sequence's tokens in the pool once this step's are stored
//   seqOrder                      [seqs]        the sequences longest context first (lesson 09's decode kernel
//                                               starts the longest first, so a ragged batch ends on short ones)
//   lastTokenIndex                [sampled]     the row of each sampling sequence's last token (the LM head runs on these only)
//   blockTables                   [seqs, width] each sequence's block ids, width = the longest table in the step
import { type Device, Tensor } from '@aios/engine-core';
import type { PagedAttentionMeta } from '@aios/engine-core/ops.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { type StepPlan, samplesAt } from '@aios/engine-core/engine/types.ts';
import { slotOf } from '@aios/lesson-06-paged-kv-cache';

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

interface Sections {
  T: number;
  B: number;
  S: number;
  width: number;
  ids: number;
  pos: number;
  slots: number;
  cu: number;
  ctx: number;
  ord: number;
  last: number;
  bt: number;
  end: number;
}

/** A padding row's block table: block 0, which exists in every pool. */
const PADDING_TABLE: readonly number[] = [0];

/**
 * A device buffer and its host mirror, sized once for the largest step the
 * engine allows: building a step allocates nothing on the device, and the
 * upload is one copy of exactly the bytes the step uses.
 */
export class StepInputBuffer {
  private readonly device: Tensor;
  private readonly host: Int32Array;
  /** Sort keys for seqOrder: context x 2^16 + (2^16 - 1 - index), so one numeric sort orders by context, then index. */
  private readonly orderKeys: Float64Array;

  constructor(
    readonly capacity: StepCapacity,
    readonly blockSize: number,
    device: Device,
  ) {
    const { maxTokens, maxSeqs, maxBlocksPerSeq } = capacity;
    if (maxSeqs > 65536) throw new Error(`StepInputBuffer: at most 65,536 sequences a step, got ${maxSeqs}`);
    const ints = 3 * maxTokens + 4 * maxSeqs + 1 + maxSeqs * maxBlocksPerSeq;
    this.device = Tensor.empty([ints], { dtype: 'i32', device });
    this.host = new Int32Array(ints);
    this.orderKeys = new Float64Array(maxSeqs);
  }

  build(plan: StepPlan): StepInput {
    const seqs = plan.sequences;
    const tables = plan.blockTables;
    if (!tables || tables.length !== seqs.length) throw new Error(`StepInputBuffer: the plan carries ${tables?.length ?? 'no'} block tables for ${seqs.length} sequences`);
    const T = plan.newTokens.reduce((a, b) => a + b, 0);
    const S = seqs.reduce((n, _, i) => n + (samplesAt(plan, i) ? 1 : 0), 0);
    const sec = this.sections(T, seqs.length, S, Math.max(1, ...tables.map((t) => t.length)));
    const h = this.host, bs = this.blockSize;
    let t = 0, s = 0, maxQLen = 0, maxContextLen = 0;
    h[sec.cu] = 0;
    seqs.forEach((seq, b) => {
      const start = seq.cachedTokens, n = plan.newTokens[b]!, table = tables[b]!;
      if (n < 1 || start + n > seq.length) throw new Error(`StepInputBuffer: sequence ${seq.id} has ${seq.length} tokens, ${start} cached, and the plan runs ${n} more`);
      if (table.length * bs < start + n) throw new Error(`StepInputBuffer: sequence ${seq.id}'s ${table.length} blocks hold ${table.length * bs} tokens, the step needs ${start + n}`);
      for (let i = 0; i < n; i++) this.writeToken(sec, t++, seq.tokenAt(start + i), start + i, table);
      h[sec.cu + b + 1] = t;
      h[sec.ctx + b] = start + n;
      if (samplesAt(plan, b)) h[sec.last + s++] = t - 1;
      this.writeTable(sec, b, table);
      maxQLen = Math.max(maxQLen, n);
      maxContextLen = Math.max(maxContextLen, start + n);
    });
    return this.upload(sec, maxQLen, maxContextLen);
  }

  /**
   * A decode step (one new token per sequence, every one sampling) in a fixed
   * layout; `plan` undefined gives all padding (what a capture or a warm-up runs).
   */
  buildFixed(plan: StepPlan | undefined, layout: FixedLayout): StepInput {
    const { seqs: L, width } = layout;
    const seqs = plan?.sequences ?? [];
    const tables = plan?.blockTables ?? [];
    if (seqs.length > L) throw new Error(`StepInputBuffer.buildFixed: ${seqs.length} sequences in a layout of ${L} rows`);
    if (plan && (tables.length !== seqs.length || plan.newTokens.some((n, i) => n !== 1 || !samplesAt(plan, i))))
      throw new Error('StepInputBuffer.buildFixed: a fixed layout holds decode steps only (one new, sampled token per sequence, block tables given)');
    const sec = this.sections(L, L, L, width);
    const h = this.host;
    h[sec.cu] = 0;
    for (let b = 0; b < L; b++) {
      h[sec.cu + b + 1] = b + 1;
      h[sec.last + b] = b;
      const seq = seqs[b];
      if (seq) {
        const table = tables[b]!, p = seq.cachedTokens;
        if (p + 1 > layout.maxContextLen || table.length > width)
          throw new Error(`StepInputBuffer.buildFixed: sequence ${seq.id} at ${p + 1} tokens and ${table.length} blocks exceeds the layout's ${layout.maxContextLen} tokens and ${width} blocks`);
        this.writeToken(sec, b, seq.tokenAt(p), p, table);
        h[sec.ctx + b] = p + 1;
        this.writeTable(sec, b, table);
      } else {
        // Padding: token 0 at position 0, no K/V stored (slot -1), one key of block 0 read.
        h[sec.ids + b] = 0;
        h[sec.pos + b] = 0;
        h[sec.slots + b] = -1;
        h[sec.ctx + b] = 1;
        this.writeTable(sec, b, PADDING_TABLE);
      }
    }
    return this.upload(sec, 1, layout.maxContextLen);
  }

  /** Where each section starts: packed back to back in the order the comment at the top lists them. */
  private sections(T: number, B: number, S: number, width: number): Sections {
    const { maxTokens, maxSeqs, maxBlocksPerSeq } = this.capacity;
    if (T > maxTokens || B > maxSeqs || width > maxBlocksPerSeq)
      throw new Error(`StepInputBuffer: a step of ${T} tokens, ${B} sequences and ${width}-block tables exceeds the buffer's ${maxTokens}, ${maxSeqs} and ${maxBlocksPerSeq}`);
    const cu = 3 * T, ctx = cu + B + 1, ord = ctx + B, last = ord + B, bt = last + S;
    return { T, B, S, width, ids: 0, pos: T, slots: 2 * T, cu, ctx, ord, last, bt, end: bt + B * width };
  }

  /** Row t: the token, its position, its slot (from the sequence's block table). */
  private writeToken(sec: Sections, t: number, token: number, p: number, table: readonly number[]): void {
    const h = this.host;
    h[sec.ids + t] = token;
    h[sec.pos + t] = p;
    h[sec.slots + t] = slotOf(table, p, this.blockSize);
  }

  /**
   * Sequence b's block table; the row's entries past its end keep whatever an earlier step left
   * there. No kernel reads past a sequence's context (its blocks), and a graph's fixed layout is
   * 256 blocks wide at the 4k context bucket: filling the rest with -1 cost a JS store per entry
   * (65,536 a step at 256 sequences) for bytes nobody reads.
   */
  private writeTable(sec: Sections, b: number, table: readonly number[]): void {
    const row = sec.bt + b * sec.width;
    for (let i = 0; i < table.length; i++) this.host[row + i] = table[i]!;
  }

  /** seqOrder from contextLens: longest first, ties by index (one numeric sort of packed keys). */
  private writeOrder(sec: Sections): void {
    const h = this.host, keys = this.orderKeys.subarray(0, sec.B);
    for (let b = 0; b < sec.B; b++) keys[b] = h[sec.ctx + b]! * 65536 + (65535 - b);
    keys.sort();
    for (let i = 0; i < sec.B; i++) h[sec.ord + i] = 65535 - (keys[sec.B - 1 - i]! % 65536);
  }

  /** The step's one upload, and its views. */
  private upload(sec: Sections, maxQLen: number, maxContextLen: number): StepInput {
    this.writeOrder(sec);
    this.device.narrow(0, 0, sec.end).write(this.host.subarray(0, sec.end));
    const d = this.device, { T, B, S, width } = sec;
    return {
      ids: d.narrow(0, sec.ids, T),
      positions: d.narrow(0, sec.pos, T),
      slotMapping: d.narrow(0, sec.slots, T),
      lastTokenIndex: d.narrow(0, sec.last, S),
      meta: {
        cuSeqlensQ: d.narrow(0, sec.cu, B + 1),
        contextLens: d.narrow(0, sec.ctx, B),
        seqOrder: d.narrow(0, sec.ord, B),
        blockTables: d.narrow(0, sec.bt, B * width).view(B, width),
        blockSize: this.blockSize,
        maxQLen,
        maxContextLen,
      },
      numTokens: T,
      numSampled: S,
    };
  }

  dispose(): void {
    this.device.dispose();
  }
}
