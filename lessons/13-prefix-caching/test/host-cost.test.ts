// What lesson 13 does to keep its host cost per step at lesson 08's must not
// change a single decision: blocks filed in the hash table lazily (before the
// first read of the table) and hashed ahead in overlap() give the same plans,
// the same block tables, the same eviction order and the same counters as
// filing every finished step's blocks as the next step begins.
import { describe, expect, it } from 'vitest';

import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { samplesAt } from '@aios/engine-core/engine/types.ts';
import { mulberry32 } from '@aios/engine-core/random.ts';

import { PrefixCachingBlockManager } from '../src/prefix-block-manager.ts';
import { PrefixCachingScheduler } from '../src/prefix-scheduler.ts';

const BS = 4;
const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

type Mode = 'file at step start' | 'lazy' | 'lazy + overlap';

interface Driver {
  mode: Mode;
  m: PrefixCachingBlockManager;
  s: PrefixCachingScheduler;
  /** Sequences by the index the test gave them (the three drivers' Sequence ids differ). */
  seqs: Sequence[];
  live: Set<number>;
}

function driver(mode: Mode): Driver {
  const m = new PrefixCachingBlockManager(24, BS);
  return { mode, m, s: new PrefixCachingScheduler(m, { maxNumSeqs: 6, maxNumBatchedTokens: 40 }), seqs: [], live: new Set() };
}

/** One step; returns what it planned, with sequences named by test index, and the indices that finished. */
function step(d: Driver, tokens: number[]): { plan: string; done: number[] } {
  const index = new Map(d.seqs.map((q, i) => [q, i]));
  if (d.mode === 'file at step start') {
    d.m.stepDone(); // the last step's blocks filed now, as lesson 13 first did
    d.m.cacheFilled();
  }
  const plan = d.s.schedule();
  if (!plan) return { plan: 'none', done: [] };
  if (d.mode === 'lazy + overlap') d.s.overlap(); // where the engine calls it: after queueing the forward
  const text = `${plan.phase} ${plan.sequences.map((q, i) => `${index.get(q)}+${plan.newTokens[i]}@${q.cachedTokens}[${plan.blockTables![i]!.join(',')}]`).join(' ')} preempted ${(plan.preempted ?? []).map((q) => index.get(q)).join(',')}`;
  const sampled = plan.sequences.filter((_, i) => samplesAt(plan, i));
  plan.sequences.forEach((q, i) => (q.cachedTokens += plan.newTokens[i]!));
  const done: number[] = [];
  sampled.forEach((q, k) => {
    q.append(tokens[k % tokens.length]!);
    if (q.outputIds.length >= q.params.maxTokens) {
      q.finish('length');
      d.s.finished(q);
      d.live.delete(index.get(q)!);
      done.push(index.get(q)!);
    }
  });
  return { plan: text, done };
}

describe('lesson 13 host cost: lazy filing and hashing ahead', () => {
  it('give the same plans, block tables, eviction order and counters as filing each step at the next one\'s start', () => {
    const rand = mulberry32(1313);
    const drivers = (['file at step start', 'lazy', 'lazy + overlap'] as const).map(driver);
    const prefixes = [ids(9, 1000), ids(13, 2000), ids(4, 3000)];
    let steps = 0, preemptions = 0;
    for (let op = 0; op < 4000; op++) {
      const r = rand();
      const live = drivers[0]!.live;
      if (r < 0.25 && live.size < 12) {
        const base = rand() < 0.8 ? prefixes[Math.floor(rand() * prefixes.length)]! : [];
        const prompt = [...base, ...Array.from({ length: 1 + Math.floor(rand() * 10) }, () => Math.floor(rand() * 6))];
        const maxTokens = 1 + Math.floor(rand() * 12);
        for (const d of drivers) {
          const q = new Sequence(prompt, new SamplingParams({ temperature: 0, maxTokens, ignoreEos: true }));
          d.s.add(q);
          d.live.add(d.seqs.length);
          d.seqs.push(q);
        }
      } else if (r < 0.3 && live.size > 0) {
        const i = [...live][Math.floor(rand() * live.size)]!;
        for (const d of drivers) {
          d.s.abort(d.seqs[i]!);
          d.seqs[i]!.finish('abort');
          d.live.delete(i);
        }
      } else {
        // The same sampled tokens for all three (a chat's later turn repeats earlier outputs: tokens in [0, 6)).
        const tokens = Array.from({ length: 6 }, () => Math.floor(rand() * 6));
        const results = drivers.map((d) => step(d, tokens));
        expect(results[1]!.plan).toBe(results[0]!.plan);
        expect(results[2]!.plan).toBe(results[0]!.plan);
        expect(results[1]!.done).toEqual(results[0]!.done);
        expect(results[2]!.done).toEqual(results[0]!.done);
        steps++;
        if (!results[0]!.plan.endsWith('preempted ')) preemptions++;
      }
      expect(drivers.map((d) => d.s.pending)).toEqual(drivers.map(() => live.size));
    }
    // Read last: stats() and audit() file whatever is pending, which would make the lazy drivers eager.
    const [ref, ...others] = drivers.map((d) => ({ order: d.m.evictionOrder(), stats: d.m.stats(), free: d.m.freeBlocks }));
    for (const o of others) expect(o).toEqual(ref);
    for (const d of drivers) d.m.audit();
    expect(steps).toBeGreaterThan(2000);
    expect(preemptions).toBeGreaterThan(10);
    expect(ref!.stats.hits).toBeGreaterThan(100);
    expect(ref!.stats.evictions).toBeGreaterThan(50);
  });
});
