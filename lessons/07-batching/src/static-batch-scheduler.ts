// Static batching: a batch of waiting requests is admitted together, prefilled,
// and decoded step by step until every one of them has finished; only then is
// the next batch admitted. A sequence that finishes early leaves its slot idle
// for the rest of the batch. Because nothing can be preempted, a batch is
// admitted only if the worst case fits: every sequence's prompt plus its
// maxTokens, in blocks, reserved up front (blocks are still handed out as the
// tokens arrive; the reservation only keeps others from taking them).
// Lesson 08 replaces this scheduler with one that admits and retires every step.
import type { Scheduler, SchedulerStats, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { BlockManager } from '@aios/lesson-06-paged-kv-cache';

/** A scheduler that manages paged memory (the recipe hands it the block manager). */
export interface PagedScheduler extends Scheduler {
  /** Blocks held back from other sequences: allocated ones, plus any reservation a design keeps beyond them. */
  reservedBlocks(): number;
}

export interface SchedulerLimits {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
}

/** The blocks a sequence needs at its longest: prompt + maxTokens (its last token never runs, but a recompute may). */
export function worstCaseBlocks(blocks: BlockManager, seq: Sequence): number {
  return blocks.blocksFor(seq.promptIds.length + seq.params.maxTokens);
}

/** Refuses a request no schedule could ever run: it would need more blocks than the whole pool. */
export function checkFits(blocks: BlockManager, seq: Sequence): void {
  const need = worstCaseBlocks(blocks, seq);
  if (need > blocks.numBlocks)
    throw new RangeError(
      `the request needs up to ${need} KV blocks (${seq.promptIds.length} prompt + ${seq.params.maxTokens} max tokens, ${blocks.blockSize} per block) ` +
        `but the pool holds ${blocks.numBlocks}`,
    );
}

/** Still has prompt (or, after a preemption, recompute) tokens to run before it can decode one at a time. */
export function needsPrefill(seq: Sequence): boolean {
  return seq.outputIds.length === 0 || seq.length - seq.cachedTokens > 1;
}

/**
 * Prefill work for `candidates` (sequences with uncached tokens) under the
 * step's token budget: whole sequences in order while they fit, and a chunk of
 * the first one when even it does not (a prompt longer than the budget is
 * prefilled over several steps). Blocks for the chosen tokens are allocated.
 */
export function planPrefill(candidates: readonly Sequence[], blocks: BlockManager, limits: SchedulerLimits): StepPlan | undefined {
  const sequences: Sequence[] = [];
  const newTokens: number[] = [];
  let budget = limits.maxNumBatchedTokens;
  for (const seq of candidates) {
    if (sequences.length >= limits.maxNumSeqs) break;
    const left = seq.length - seq.cachedTokens;
    const n = left <= budget ? left : sequences.length === 0 ? budget : 0;
    if (n === 0) break;
    if (!blocks.canAppend(seq.id, n)) break;
    blocks.append(seq.id, n);
    sequences.push(seq);
    newTokens.push(n);
    budget -= n;
  }
  if (sequences.length === 0) return undefined;
  return { sequences, newTokens, phase: 'prefill', blockTables: sequences.map((s) => blocks.blockTable(s.id)) };
}

export class StaticBatchScheduler implements PagedScheduler {
  private readonly waiting: Sequence[] = [];
  /** The current batch, in admission order; finished members leave it (their slots idle until it ends). */
  private batch: Sequence[] = [];
  /** Blocks the batch's members reserved on admission: each one's worstCaseBlocks. */
  private reserved = 0;

  constructor(
    readonly blocks: BlockManager,
    readonly limits: SchedulerLimits,
  ) {}

  add(seq: Sequence): void {
    checkFits(this.blocks, seq);
    this.waiting.push(seq);
  }

  get pending(): number {
    return this.waiting.length + this.batch.length;
  }

  schedule(): StepPlan | undefined {
    if (this.batch.length === 0) this.admitBatch();
    if (this.batch.length === 0) return undefined;
    // Prefill first: members with uncached tokens, under the token budget.
    const prefill = planPrefill(this.batch.filter(needsPrefill), this.blocks, this.limits);
    if (prefill) return prefill;
    // Then one decode step for every member still running. Its reservation guarantees the block.
    const sequences = [...this.batch];
    for (const s of sequences) this.blocks.append(s.id, 1);
    return { sequences, newTokens: sequences.map(() => 1), phase: 'decode', blockTables: sequences.map((s) => this.blocks.blockTable(s.id)) };
  }

  /** Admits waiting requests in arrival order while the batch has room and their worst case fits the pool. */
  private admitBatch(): void {
    while (this.waiting.length > 0 && this.batch.length < this.limits.maxNumSeqs) {
      const seq = this.waiting[0]!;
      const need = worstCaseBlocks(this.blocks, seq);
      if (this.reserved + need > this.blocks.numBlocks) break;
      this.waiting.shift();
      this.reserved += need;
      seq.status = 'running';
      this.batch.push(seq);
    }
  }

  finished(seq: Sequence): void {
    this.remove(seq);
  }

  abort(seq: Sequence): void {
    const i = this.waiting.indexOf(seq);
    if (i >= 0) this.waiting.splice(i, 1);
    this.remove(seq);
  }

  private remove(seq: Sequence): void {
    const i = this.batch.indexOf(seq);
    if (i < 0) return;
    this.batch.splice(i, 1);
    this.blocks.free(seq.id);
    this.reserved -= worstCaseBlocks(this.blocks, seq);
  }

  reservedBlocks(): number {
    return this.reserved;
  }

  stats(): SchedulerStats {
    return { waiting: this.waiting.length, running: this.batch.length, usedBlocks: this.blocks.usedBlocks, totalBlocks: this.blocks.numBlocks };
  }
}
