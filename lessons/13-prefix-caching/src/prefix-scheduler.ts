// Lesson 08's continuous-batching scheduler, with admission that looks first:
// a waiting sequence's prefix is looked up in the block cache (the longest run
// of full blocks whose chained hashes are cached), the blocks found are shared
// with it, its cachedTokens starts after them, and only the rest is prefilled.
// The runner needs no change: a prefill that starts at cachedTokens > 0 is the
// next chunk of a chunked prefill (lesson 07), reading the earlier tokens'
// K/V through the block table.
//
// Two more things make a shared prefix pay off:
//   - the blocks each sequence filled during the last step (prompt chunks and
//     decoded tokens alike) become findable once their K/V is computed, so a
//     request that arrives later finds them (they are hashed while the device
//     computes the step, and filed in the table before the next lookup);
//   - a waiting sequence whose next uncached block is being computed in this
//     very step by a sequence admitted before it waits one step and then finds
//     it cached, instead of computing the same 1,024 tokens again beside it.
//
// The host cost of a step stays lesson 08's: a decode step visits only the
// sequences that filled a block, and the sha256 work runs in overlap(), which
// the engine calls while the device computes (scheduler-bench.ts measures it).
//
// Preemption, abort and finish go through lesson 08's paths: they free the
// sequence's blocks, and the manager keeps the hashed ones cached, so a
// preempted sequence usually finds most of its own blocks when it comes back.
import type { SchedulerStats, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { BlockManager } from '@aios/lesson-06-paged-kv-cache';
import { type SchedulerLimits, needsPrefill } from '@aios/lesson-07-batching';
import { ContinuousBatchingScheduler } from '@aios/lesson-08-continuous-batching';

import { type BlockHash, PrefixCachingBlockManager } from './prefix-block-manager.ts';

export class PrefixCachingScheduler extends ContinuousBatchingScheduler {
  readonly cache: PrefixCachingBlockManager;

  constructor(blocks: BlockManager, limits: SchedulerLimits) {
    if (!(blocks instanceof PrefixCachingBlockManager))
      throw new TypeError('PrefixCachingScheduler: its block manager must be a PrefixCachingBlockManager (the recipe sets BatchedParts.blockManager)');
    super(blocks, limits);
    this.cache = blocks;
  }

  /**
   * Lesson 08's prefill step (running sequences part-way through a chunked
   * prefill, then waiting ones in arrival order, under the step's token and
   * sequence budgets), with each waiting sequence's cached prefix taken first.
   */
  protected override prefillStep(): StepPlan | undefined {
    const cache = this.cache;
    // The last step's K/V is computed now: the blocks it filled become findable
    // (filed in the table before the first lookup, or during this step's overlap).
    // The manager noted which sequences filled one (in a decode step, about one
    // in blockSize of them), so only those are visited.
    cache.stepDone();
    // A decode step's usual case: nothing waits and nothing is part-way through a prefill.
    if (this.waiting.length === 0 && !anyNeedsPrefill(this.running)) return undefined;
    const sequences: Sequence[] = [];
    const newTokens: number[] = [];
    let budget = this.limits.maxNumBatchedTokens;
    /** The full blocks this step computes: blocks [from, to) of each taken sequence's hash chain. */
    const computed: { chain: readonly BlockHash[]; from: number; to: number }[] = [];
    const computes = (seq: Sequence, from: number, n: number) => {
      const bs = cache.blockSize;
      const chain = cache.chain(seq, Math.floor((from + n) / bs));
      const first = Math.floor(from / bs);
      if (chain.length > first) computed.push({ chain, from: first, to: chain.length });
    };
    // A chained hash fixes its block's index (it hashes every block before it), so
    // only the taken sequences that compute block `index` are compared: no set of
    // every hash the step computes (a prefill step computes up to a thousand blocks).
    const inFlight = (hash: BlockHash, index: number) => computed.some((c) => c.from <= index && index < c.to && c.chain[index] === hash);
    const take = (seq: Sequence, n: number) => {
      computes(seq, seq.cachedTokens, n);
      sequences.push(seq);
      newTokens.push(n);
      budget -= n;
    };
    const chunk = (left: number) => (left <= budget ? left : sequences.length === 0 ? budget : 0);

    let blocked = false;
    for (const seq of this.running.filter(needsPrefill)) {
      const n = chunk(seq.length - seq.cachedTokens);
      if (n === 0 || sequences.length >= this.limits.maxNumSeqs || !cache.canAppend(seq.id, n)) {
        blocked = true;
        break;
      }
      cache.append(seq.id, n);
      take(seq, n);
    }
    let room = this.limits.maxNumSeqs - this.running.length;
    for (const seq of blocked ? [] : [...this.waiting]) {
      if (room <= 0 || sequences.length >= this.limits.maxNumSeqs) break;
      const prefix = cache.lookup(seq);
      if (prefix.next !== undefined && inFlight(prefix.next, prefix.blocks.length)) continue; // computed by another this step: found cached next step
      const n = chunk(seq.length - prefix.tokens);
      if (n === 0 || !cache.canAdmit(prefix, n)) break;
      cache.admit(seq, prefix, n);
      seq.cachedTokens = prefix.tokens;
      this.admit(seq);
      room--;
      take(seq, n);
    }
    if (sequences.length === 0) return undefined;
    return { sequences, newTokens, phase: 'prefill', blockTables: sequences.map((s) => cache.blockTable(s.id)) };
  }

  /**
   * Lesson 08's step, with a decode step's sequences grouped by their first
   * block: sequences that share a prefix share its physical blocks, and when
   * they sit next to each other in the step the decode kernel reads those
   * blocks while they are still in the GPU's L2 cache, instead of once per
   * sequence from memory. The order within the step changes nothing else; a
   * step where no two sequences share a first block keeps lesson 08's order.
   */
  override schedule(): (StepPlan & { preempted?: Sequence[] }) | undefined {
    const plan = super.schedule();
    // Without a block that starts two tables (the manager counts them), no two sequences share a first block.
    if (plan?.phase === 'decode' && plan.blockTables && this.cache.sharesFirstBlocks && sharesAFirstBlock(plan.blockTables)) {
      const tables = plan.blockTables;
      const order = plan.sequences.map((_, i) => i).sort((a, b) => (tables[a]![0] ?? -1) - (tables[b]![0] ?? -1) || a - b);
      plan.sequences = order.map((i) => plan.sequences[i]!);
      plan.newTokens = order.map((i) => plan.newTokens[i]!);
      plan.blockTables = order.map((i) => tables[i]!);
    }
    return plan;
  }

  /**
   * While the device runs the step: files the last step's blocks in the table
   * (unless a lookup already did), then hashes the blocks this step fills and
   * the prompts the next step may look up (sha256 per block, the one costly
   * part of prefix caching on the host), so that a decode step's schedule()
   * neither hashes nor files anything.
   */
  overlap(): void {
    this.cache.cacheFilled();
    this.cache.hashAhead(this.waiting, this.limits.maxNumBatchedTokens);
  }

  /** Empties the cache between timed runs (the harness asks, so repeats start cold). */
  dropCache(): void {
    if (this.pending > 0) throw new Error(`PrefixCachingScheduler.dropCache: ${this.pending} sequences are still pending`);
    this.cache.dropCached();
  }

  override stats(): SchedulerStats {
    const { cachedBlocks: _c, evictableBlocks: _e, ...prefixCache } = this.cache.stats();
    return { ...super.stats(), prefixCache };
  }
}

function sharesAFirstBlock(tables: readonly (readonly number[])[]): boolean {
  const seen = new Set<number>();
  for (const t of tables) {
    const b = t[0];
    if (b === undefined) continue;
    if (seen.has(b)) return true;
    seen.add(b);
  }
  return false;
}

function anyNeedsPrefill(seqs: readonly Sequence[]): boolean {
  for (let i = 0; i < seqs.length; i++) if (needsPrefill(seqs[i]!)) return true;
  return false;
}
