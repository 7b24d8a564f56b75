// Lesson 13's block manager and scheduler without a model: the hash chain, what
// a lookup finds (never the last token), reference counts, the LRU order of
// eviction, deferral of a prefix being computed in the same step, the counters,
// and 10,000 random add / step / finish / abort operations after which every
// reference is back to zero and every block is free or cached.
import { describe, expect, it } from 'vitest';

import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { samplesAt } from '@aios/engine-core/engine/types.ts';
import { mulberry32 } from '@aios/engine-core/random.ts';
import { sharedPrefixWorkload, throughputWorkload } from '@aios/engine-core/bench/workloads.ts';
import type { Scheduler } from '@aios/engine-core/engine/types.ts';
import { BlockManager } from '@aios/lesson-06-paged-kv-cache';
import { ContinuousBatchingScheduler } from '@aios/lesson-08-continuous-batching';

import { PrefixCachingBlockManager, blockHashes, hashBlock } from '../src/prefix-block-manager.ts';
import { PrefixCachingScheduler } from '../src/prefix-scheduler.ts';

const BS = 4;
const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
const seqOf = (prompt: number[], maxTokens = 4) => new Sequence(prompt, new SamplingParams({ temperature: 0, maxTokens, ignoreEos: true }));

/** Admits a sequence with whatever prefix is cached, and marks all its tokens computed (as a finished prefill would). */
function prefill(m: PrefixCachingBlockManager, seq: Sequence): number {
  const p = m.lookup(seq);
  m.admit(seq, p, seq.length - p.tokens);
  seq.cachedTokens = seq.length;
  m.cacheFilledBlocks(seq.id); // what the scheduler does at the next step
  return p.tokens;
}

describe('block hashes', () => {
  it('chain over the prefix: the same tokens after different prefixes hash differently', () => {
    const a = blockHashes([1, 2, 3, 4, 9, 9, 9, 9], BS);
    const b = blockHashes([5, 6, 7, 8, 9, 9, 9, 9], BS);
    expect(a).toHaveLength(2);
    expect(a[1]).not.toBe(b[1]); // second block: same ids, other prefix
    expect(hashBlock(undefined, [9, 9, 9, 9])).not.toBe(a[1]); // the same ids as a first block
    expect(blockHashes([1, 2, 3, 4, 9, 9, 9, 9, 1], BS)).toEqual(a); // a partial block has no hash
    expect(blockHashes([1, 2, 3, 4, 9, 9, 9, 8], BS)[0]).toBe(a[0]);
    expect(blockHashes([1, 2, 3, 4, 9, 9, 9, 8], BS)[1]).not.toBe(a[1]);
    expect(hashBlock(a[0], [9, 9, 9, 9])).toBe(a[1]);
    expect(a[0]).toMatch(/^[A-Za-z0-9+/]{43}=$/); // sha256 in base64
  });

  it('a sequence chain covers prompt and output tokens', () => {
    const m = new PrefixCachingBlockManager(8, BS);
    const s = seqOf([1, 2, 3, 4, 5, 6]);
    s.append(7);
    s.append(8);
    expect(m.chain(s, 2)).toEqual(blockHashes([1, 2, 3, 4, 5, 6, 7, 8], BS));
    expect(() => m.chain(s, 3)).toThrow(/not 3 full blocks/);
  });
});

describe('PrefixCachingBlockManager', () => {
  it('a later sequence shares the cached full blocks of an earlier one; a finished sequence keeps them cached', () => {
    const m = new PrefixCachingBlockManager(16, BS);
    const a = seqOf(ids(10));
    expect(prefill(m, a)).toBe(0);
    const b = seqOf([...ids(8), 50, 51, 52]);
    const hit = m.lookup(b);
    expect(hit.tokens).toBe(8); // blocks 0 and 1; a's third block is partial
    expect(hit.blocks).toEqual(m.blockTable(a.id).slice(0, 2));
    expect(hit.revived).toBe(0);
    m.admit(b, hit, 3);
    expect(m.refCount(hit.blocks[0]!)).toBe(2);
    expect(m.usedBlocks).toBe(3 + 1); // a: 3, b: 1 new
    expect(m.usedTokens).toBe(10 + 3); // shared tokens counted once
    m.free(a.id);
    m.free(b.id);
    m.audit();
    expect(m.usedBlocks).toBe(0);
    expect(m.freeBlocks).toBe(16);
    expect(m.stats().cachedBlocks).toBe(2);
    // Nobody holds them now, but a third sequence still finds (and revives) them.
    const c = seqOf([...ids(8), 60]);
    const again = m.lookup(c);
    expect(again).toMatchObject({ tokens: 8, revived: 2 });
    expect(m.canAdmit(again, 1)).toBe(true);
    m.admit(c, again, 1);
    expect(m.evictionOrder()).toEqual([]);
    m.audit();
  });

  it('never hits the last token: a block-aligned prompt recomputes its last block, a longer one only its last token', () => {
    const m = new PrefixCachingBlockManager(16, BS);
    prefill(m, seqOf(ids(12)));
    expect(m.lookup(seqOf(ids(12))).tokens).toBe(8); // all 3 blocks cached; the last is recomputed in a block of its own
    expect(m.lookup(seqOf(ids(13))).tokens).toBe(12); // 1 token left to compute
    expect(m.lookup(seqOf(ids(4))).tokens).toBe(0);
    expect(m.lookup(seqOf(ids(5))).tokens).toBe(4);
    expect(m.lookup(seqOf([0, 1, 2, 9, 4, 5, 6, 7, 8])).tokens).toBe(0); // first block differs: nothing after it counts
  });

  it('evicts least recently released blocks first, a sequence tail before its head; a revived block leaves the list', () => {
    const m = new PrefixCachingBlockManager(6, BS);
    const a = seqOf(ids(8, 100)), b = seqOf(ids(8, 200));
    prefill(m, a);
    prefill(m, b);
    const [a0, a1] = m.blockTable(a.id), [b0, b1] = m.blockTable(b.id);
    m.free(a.id);
    m.free(b.id);
    expect(m.evictionOrder()).toEqual([a1, a0, b1, b0]);
    // A hit on a's blocks takes them off the list; released again, they are the most recent.
    const a2 = seqOf([...ids(8, 100), 7]);
    prefill(m, a2);
    expect(m.evictionOrder()).toEqual([b1, b0]);
    m.free(a2.id);
    expect(m.evictionOrder()).toEqual([b1, b0, a1, a0]);
    // 6 blocks: 2 never used, then the oldest cached ones go.
    const big = seqOf(ids(16, 900));
    m.admit(big, m.lookup(big), 16);
    expect(m.evictionOrder()).toEqual([a1, a0]);
    expect(m.stats().evictions).toBe(2);
    expect(m.lookup(seqOf(ids(9, 200))).tokens).toBe(0); // b's blocks were evicted: their hashes went too
    expect(m.lookup(seqOf(ids(9, 100))).tokens).toBe(8);
    m.audit();
  });

  it('admission counts the blocks a hit revives; a stale lookup is refused', () => {
    const m = new PrefixCachingBlockManager(4, BS);
    const a = seqOf(ids(8));
    prefill(m, a);
    m.free(a.id); // 2 cached (evictable) + 2 never used: 4 free
    const b = seqOf(ids(14)); // hits 2 blocks, needs 2 more for tokens 8..13
    const hit = m.lookup(b);
    expect(hit).toMatchObject({ tokens: 8, revived: 2 });
    expect(m.canAdmit(hit, 6)).toBe(true);
    expect(m.canAdmit(hit, 9)).toBe(false); // 2 revived + 3 new > 4
    const other = seqOf(ids(12, 500));
    m.admit(other, m.lookup(other), 12); // takes the 2 never-used blocks and evicts both cached ones
    expect(() => m.admit(b, hit, 6)).toThrow(/evicted since the lookup/);
    m.audit();
  });

  it('dropCached forgets the cached blocks nobody holds, and only those', () => {
    const m = new PrefixCachingBlockManager(8, BS);
    const a = seqOf(ids(8)), b = seqOf(ids(8, 50));
    prefill(m, a);
    prefill(m, b);
    m.free(a.id);
    expect(m.dropCached()).toBe(2);
    expect(m.stats()).toMatchObject({ cachedBlocks: 2, evictableBlocks: 0 }); // b's blocks, held, stay hashed
    expect(m.lookup(seqOf(ids(9))).tokens).toBe(0);
    expect(m.lookup(seqOf(ids(9, 50))).tokens).toBe(8);
    m.audit();
  });

  it('two sequences that computed the same block: the second copy stays uncached and is freed normally', () => {
    const m = new PrefixCachingBlockManager(8, BS);
    const a = seqOf(ids(6)), b = seqOf(ids(6));
    m.admit(a, m.lookup(a), 6);
    m.admit(b, m.lookup(b), 6);
    a.cachedTokens = b.cachedTokens = 6;
    m.cacheFilledBlocks(a.id);
    m.cacheFilledBlocks(b.id);
    expect(m.stats().cachedBlocks).toBe(1);
    m.free(a.id);
    m.free(b.id);
    expect(m.evictionOrder()).toHaveLength(1);
    m.audit();
  });
});

/** What the engine does with a plan, without a model: tokens computed, a token sampled, finished at maxTokens. */
function runStep(s: PrefixCachingScheduler, rand: () => number, vocab: number): { done: Sequence[]; preempted: number } {
  const plan = s.schedule();
  if (!plan) return { done: [], preempted: 0 };
  const sampled = plan.sequences.filter((_, i) => samplesAt(plan, i));
  plan.sequences.forEach((q, i) => (q.cachedTokens += plan.newTokens[i]!));
  const done: Sequence[] = [];
  for (const q of sampled) {
    q.append(Math.floor(rand() * vocab));
    if (q.outputIds.length >= q.params.maxTokens) {
      q.finish('length');
      s.finished(q);
      done.push(q);
    }
  }
  return { done, preempted: plan.preempted?.length ?? 0 };
}

describe('PrefixCachingScheduler', () => {
  const limits = { maxNumSeqs: 8, maxNumBatchedTokens: 64 };

  it('is built around a PrefixCachingBlockManager only', () => {
    expect(() => new PrefixCachingScheduler(new BlockManager(8, BS), limits)).toThrow(/PrefixCachingBlockManager/);
  });

  it('prefills only what is not cached, and counts it', () => {
    const m = new PrefixCachingBlockManager(64, BS);
    const s = new PrefixCachingScheduler(m, limits);
    const a = seqOf([...ids(16), 1, 2], 2);
    s.add(a);
    expect(s.schedule()).toMatchObject({ sequences: [a], newTokens: [18], phase: 'prefill' });
    a.cachedTokens = 18;
    a.append(3);
    const b = seqOf([...ids(16), 7, 7, 7], 2);
    s.add(b);
    const plan = s.schedule()!; // a's 4 full blocks are hashed now; b finds them
    expect(plan).toMatchObject({ sequences: [b], newTokens: [3], phase: 'prefill' });
    expect(b.cachedTokens).toBe(16);
    expect(plan.blockTables![0]!.slice(0, 4)).toEqual(m.blockTable(a.id).slice(0, 4));
    expect(s.stats().prefixCache).toMatchObject({ queries: 2, queryTokens: 18 + 19, hits: 1, hitBlocks: 4, hitTokens: 16, revivedBlocks: 0 });
  });

  it("groups a decode step's sequences by their first block (shared prefixes side by side), whatever their admission order", () => {
    const m = new PrefixCachingBlockManager(64, BS);
    const s = new PrefixCachingScheduler(m, limits);
    const x = ids(8, 100), y = ids(8, 200);
    const seqs = [seqOf([...x, 1]), seqOf([...y, 2]), seqOf([...x, 3]), seqOf([...y, 4]), seqOf([...x, 5])];
    for (const q of seqs) s.add(q);
    const rand = mulberry32(3);
    let plan;
    while ((plan = s.schedule()) && plan.phase !== 'decode') {
      const sampled = plan.sequences.filter((_, i) => samplesAt(plan!, i));
      plan.sequences.forEach((q, i) => (q.cachedTokens += plan!.newTokens[i]!));
      for (const q of sampled) q.append(Math.floor(rand() * 6));
    }
    expect(plan!.sequences).toHaveLength(5);
    const first = plan!.blockTables!.map((t) => t[0]);
    expect(plan!.sequences.map((q) => q.promptIds[0])).toEqual(first[0] === m.blockTable(seqs[0]!.id)[0] ? [100, 100, 100, 200, 200] : [200, 200, 100, 100, 100]);
    plan!.sequences.forEach((q, i) => expect(plan!.blockTables![i]).toEqual(m.blockTable(q.id)));
  });

  it('a preempted sequence keeps its computed blocks cached and finds them when it comes back', () => {
    const m = new PrefixCachingBlockManager(7, BS);
    const s = new PrefixCachingScheduler(m, { maxNumSeqs: 4, maxNumBatchedTokens: 64 });
    const a = seqOf(ids(12, 100), 6), b = seqOf(ids(12, 200), 6);
    s.add(a);
    s.add(b);
    const rand = mulberry32(5);
    const preempted: Sequence[] = [];
    let readmitted = 0;
    let guard = 0;
    while (s.pending > 0 && guard++ < 100) {
      const before = s.stats().prefixCache!;
      const plan = s.schedule()!;
      preempted.push(...(plan.preempted ?? []));
      if (plan.phase === 'prefill' && plan.sequences.includes(b) && preempted.includes(b)) {
        // b's readmission: its first blocks were cached when it was preempted, and are found again.
        const after = s.stats().prefixCache!;
        expect(after.hitTokens - before.hitTokens).toBe(b.cachedTokens);
        expect(b.cachedTokens).toBeGreaterThanOrEqual(BS);
        expect(after.revivedBlocks - before.revivedBlocks).toBe(b.cachedTokens / BS);
        readmitted++;
      }
      const sampled = plan.sequences.filter((_, i) => samplesAt(plan, i));
      plan.sequences.forEach((q, i) => (q.cachedTokens += plan.newTokens[i]!));
      for (const q of sampled) {
        q.append(Math.floor(rand() * 6));
        if (q.outputIds.length >= q.params.maxTokens) {
          q.finish('length');
          s.finished(q);
        }
      }
      m.audit();
    }
    expect(preempted).toContain(b);
    expect(readmitted).toBeGreaterThan(0);
    expect(s.pending).toBe(0);
    expect(s.stats().prefixCache!.queries).toBe(2 + preempted.length);
  });

  it('a sequence whose prefix another computes in the same step waits one step, then finds it', () => {
    const m = new PrefixCachingBlockManager(64, BS);
    const s = new PrefixCachingScheduler(m, limits);
    const shared = ids(20, 40);
    const [a, b, c] = [seqOf([...shared, 1], 3), seqOf([...shared, 2, 2], 3), seqOf(ids(5, 900), 3)];
    for (const q of [a, b, c]) s.add(q);
    let plan = s.schedule()!;
    expect(plan.sequences).toEqual([a, c]); // b is deferred: a computes its first block now
    plan.sequences.forEach((q, i) => (q.cachedTokens += plan.newTokens[i]!));
    a.append(5);
    c.append(5);
    plan = s.schedule()!;
    expect(plan).toMatchObject({ sequences: [b], newTokens: [2], phase: 'prefill' });
    expect(b.cachedTokens).toBe(20);
  });

  it('no leaks after 10,000 random add / step / finish / abort operations, preemptions included', () => {
    const rand = mulberry32(13);
    const m = new PrefixCachingBlockManager(20, BS);
    const s = new PrefixCachingScheduler(m, { maxNumSeqs: 6, maxNumBatchedTokens: 48 });
    const prefixes = [ids(9, 1000), ids(13, 2000), ids(4, 3000)];
    const live = new Set<Sequence>();
    let preempted = 0, finished = 0, aborted = 0;
    for (let op = 0; op < 10_000; op++) {
      const r = rand();
      if (r < 0.25 && live.size < 12) {
        const base = rand() < 0.8 ? prefixes[Math.floor(rand() * prefixes.length)]! : [];
        const q = seqOf([...base, ...Array.from({ length: 1 + Math.floor(rand() * 10) }, () => Math.floor(rand() * 6))], 1 + Math.floor(rand() * 12));
        s.add(q);
        live.add(q);
      } else if (r < 0.3 && live.size > 0) {
        const q = [...live][Math.floor(rand() * live.size)]!;
        s.abort(q);
        q.finish('abort');
        live.delete(q);
        aborted++;
      } else {
        const step = runStep(s, rand, 6);
        for (const q of step.done) {
          live.delete(q);
          finished++;
        }
        preempted += step.preempted;
      }
      m.audit();
      expect(s.pending).toBe(live.size);
    }
    while (live.size > 0) for (const q of runStep(s, rand, 6).done) live.delete(q);
    m.audit();
    expect(m.usedBlocks).toBe(0);
    expect(m.usedTokens).toBe(0);
    for (let b = 0; b < m.numBlocks; b++) expect(m.refCount(b)).toBe(0);
    expect(m.freeBlocks).toBe(m.numBlocks); // never-used + evictable = all
    const st = s.stats().prefixCache!;
    expect(finished).toBeGreaterThan(500);
    expect(aborted).toBeGreaterThan(100);
    expect(st.hits).toBeGreaterThan(100);
    expect(st.evictions).toBeGreaterThan(0);
    expect(preempted).toBeGreaterThan(10);
  });

  /** A whole workload through a scheduler, the engine's loop without a model: prefill tokens and steps. */
  function schedule(w: ReturnType<typeof sharedPrefixWorkload>, s: Scheduler): { prefillTokens: number; steps: number } {
    for (const r of w.requests) s.add(new Sequence(r.promptIds, r.params));
    let prefillTokens = 0, steps = 0;
    while (s.pending > 0) {
      const plan = s.schedule()!;
      steps++;
      if (plan.phase === 'prefill') prefillTokens += plan.newTokens.reduce((a, b) => a + b, 0);
      const sampled = plan.sequences.filter((_, i) => samplesAt(plan, i));
      plan.sequences.forEach((q, i) => (q.cachedTokens += plan.newTokens[i]!));
      for (const q of sampled) {
        q.append(1);
        if (q.outputIds.length >= q.params.maxTokens) {
          q.finish('length');
          s.finished(q);
        }
      }
    }
    return { prefillTokens, steps };
  }

  it("the shared-prefix workload prefills >= 85% fewer tokens than under lesson 08's scheduler; the throughput workload the same", () => {
    const limits = { maxNumSeqs: 256, maxNumBatchedTokens: 16384 }; // the defaults; a pool that holds the whole workload, as an H200's does
    const shared = sharedPrefixWorkload();
    const before = schedule(shared, new ContinuousBatchingScheduler(new BlockManager(40_000, 16), limits));
    const after = schedule(sharedPrefixWorkload(), new PrefixCachingScheduler(new PrefixCachingBlockManager(40_000, 16), limits));
    expect(before.prefillTokens).toBe(shared.totals.promptTokens);
    // Ideal: each prefix once (8 x 1,024) plus every question; the first step's deferrals get there.
    const questions = shared.totals.promptTokens - 256 * 1024;
    expect(after.prefillTokens).toBe(8 * 1024 + questions);
    expect(1 - after.prefillTokens / before.prefillTokens).toBeGreaterThanOrEqual(0.85);
    // Throughput: no prefix shared, nothing saved, the same steps.
    const t = throughputWorkload();
    expect(schedule(throughputWorkload(), new PrefixCachingScheduler(new PrefixCachingBlockManager(40_000, 16), limits))).toEqual(
      schedule(t, new ContinuousBatchingScheduler(new BlockManager(40_000, 16), limits)),
    );
  });
});
