// Continuous batching (Orca's iteration-level scheduling, as vLLM and nano-vllm
// do it): every step, first admit waiting sequences while the token budget,
// the sequence limit and free blocks allow, and run their prefill (a prompt
// longer than the budget in chunks); when no prefill can run, run one decode
// step for every running sequence. A finished sequence leaves at once and its
// blocks serve the next admission, so no slot idles while requests wait.
//
// Memory is allocated as tokens arrive, not reserved for the worst case, so
// the pool can run out in the middle of decoding. Then the newest running
// sequence is preempted: its blocks are freed, its cache forgotten, and it
// goes back to the front of the waiting queue to be recomputed (prompt and
// the tokens it already produced, in one prefill) when blocks free up. Its
// outputs so far are kept; the recompute costs time, never tokens.
import type { SchedulerStats, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { BlockManager } from '@aios/lesson-06-paged-kv-cache';
import { type PagedScheduler, type SchedulerLimits, checkFits, needsPrefill, planPrefill } from '@aios/lesson-07-batching';

export class ContinuousBatchingScheduler implements PagedScheduler {
  protected readonly waiting: Sequence[] = [];
  /** In admission order: the last one is the newest, the first to be preempted. */
  protected readonly running: Sequence[] = [];

  constructor(
    readonly blocks: BlockManager,
    readonly limits: SchedulerLimits,
  ) {}

  add(seq: Sequence): void {
    checkFits(this.blocks, seq);
    this.waiting.push(seq);
  }

  get pending(): number {
    return this.waiting.length + this.running.length;
  }

  schedule(): (StepPlan & { preempted?: Sequence[] }) | undefined {
    // 1. Prefill, when any can run.
    const prefill = this.prefillStep();
    if (prefill) return prefill;
    // 2. Decode: one token for each running sequence, making room by preemption when the pool is full.
    const preempted: Sequence[] = [];
    const sequences: Sequence[] = [];
    for (let i = 0; i < this.running.length; i++) {
      const seq = this.running[i]!;
      while (!this.blocks.canAppend(seq.id, 1)) {
        const victim = this.running[this.running.length - 1]!;
        this.preempt(victim);
        preempted.push(victim);
        if (victim === seq) break;
      }
      if (seq.status !== 'running') break; // it preempted itself: nothing after it runs either
      this.blocks.append(seq.id, 1);
      sequences.push(seq);
    }
    if (sequences.length === 0) return undefined;
    return { sequences, newTokens: sequences.map(() => 1), phase: 'decode', blockTables: sequences.map((s) => this.blocks.blockTable(s.id)), preempted };
  }

  /**
   * A prefill step, or undefined when none can run: running sequences part-way
   * through a chunked prefill, then waiting ones in arrival order, admitted
   * (moved to running) as they are planned. Lesson 13 replaces it with one that
   * first looks for each waiting sequence's prefix in the cache.
   */
  protected prefillStep(): StepPlan | undefined {
    const unfinishedPrefill = this.running.filter(needsPrefill);
    const room = this.limits.maxNumSeqs - this.running.length;
    const candidates = [...unfinishedPrefill, ...this.waiting.slice(0, Math.max(0, room))];
    const prefill = planPrefill(candidates, this.blocks, this.limits);
    if (prefill) for (const seq of prefill.sequences) this.admit(seq);
    return prefill;
  }

  /** Moves a planned sequence from waiting to running (a no-op for one already running). */
  protected admit(seq: Sequence): void {
    const w = this.waiting.indexOf(seq);
    if (w < 0) return;
    this.waiting.splice(w, 1);
    seq.status = 'running';
    this.running.push(seq);
  }

  /** Frees a running sequence's blocks and puts it back at the front of the queue, to be recomputed. */
  protected preempt(seq: Sequence): void {
    this.running.splice(this.running.indexOf(seq), 1);
    this.blocks.free(seq.id);
    seq.cachedTokens = 0;
    seq.status = 'waiting';
    this.waiting.unshift(seq);
  }

  finished(seq: Sequence): void {
    this.remove(seq);
  }

  abort(seq: Sequence): void {
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    this.remove(seq);
  }

  private remove(seq: Sequence): void {
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    this.blocks.free(seq.id); // a no-op for a sequence that holds none
  }

  /** Allocated blocks: nothing is held back beyond them. */
  reservedBlocks(): number {
    return this.blocks.usedBlocks;
  }

  stats(): SchedulerStats {
    return { waiting: this.waiting.length, running: this.running.length, usedBlocks: this.blocks.usedBlocks, totalBlocks: this.blocks.numBlocks };
  }
}
