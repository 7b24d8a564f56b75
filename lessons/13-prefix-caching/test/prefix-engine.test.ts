// Lesson 13 end to end on the CPU (tiny model, f32): the greedy tokens equal
// lesson 12's (the engine without a prefix cache) for prompts that share whole
// blocks, share part of a block, or repeat another prompt exactly (block-aligned
// or not), in one batch and again on the warm cache of a second call, seeded
// samples too, and under a pool small enough to force preemptions; the counters
// say what was reused.
import { describe, expect, it } from 'vitest';

import { runRepeated } from '@aios/engine-core/bench/harness.ts';
import { type Workload, sharedPrefixWorkload } from '@aios/engine-core/bench/workloads.ts';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { EngineOptions, Recipe } from '@aios/engine-core/engine/types.ts';
import { recipe as sampling } from '@aios/lesson-12-sampling';

import { PrefixCachingScheduler } from '../src/prefix-scheduler.ts';
import { recipe as prefixCaching } from '../src/recipe.ts';

const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i * 977 + 13) % 150_000);
const SYSTEM = ids(40, 1); // 2 full blocks of 16 and 8 tokens
const prompts = [
  [...SYSTEM, ...ids(9, 2)],
  [...SYSTEM, ...ids(30, 3)],
  [...SYSTEM.slice(0, 20), ...ids(5, 4)], // shares 1 full block and 4 tokens of the next
  ids(32, 5), // block-aligned, repeated below
  ids(32, 5),
  [...ids(32, 5), 77], // the repeated prompt plus one token: only that token is new
  ids(3, 6),
  [...SYSTEM, ...ids(12, 7)],
];
const MAX = [6, 9, 4, 7, 7, 5, 8, 10];
const greedy = MAX.map((m) => new SamplingParams({ temperature: 0, maxTokens: m, ignoreEos: true }));
/** The tiny model's KV bytes per block of 16 tokens in f32: 2 x 3 layers x 2 KV heads x 32 dims x 4 bytes x 16. */
const BLOCK_BYTES = 2 * 3 * 2 * 32 * 4 * 16;

function create(recipe: Recipe, engine: Partial<EngineOptions> = {}): LLM {
  return LLM.create({ recipe, device: 'cpu', dtype: 'f32', engine, log: () => {} });
}

describe('lesson 13 on the CPU (f32)', () => {
  const ref = (() => {
    const llm = create(sampling);
    try {
      return llm.generateWithStats(prompts, greedy, { decodeText: false });
    } finally {
      llm.dispose();
    }
  })();
  const refTokens = ref.outputs.map((o) => o.tokenIds);
  const promptTokens = prompts.reduce((n, p) => n + p.length, 0);

  it("gives lesson 12's greedy tokens, prefilling less; a second call finds the whole prompts cached", () => {
    const llm = create(prefixCaching);
    try {
      expect(llm.parts.scheduler).toBeInstanceOf(PrefixCachingScheduler);
      const first = llm.generateWithStats(prompts, greedy, { decodeText: false });
      expect(first.outputs.map((o) => o.tokenIds)).toEqual(refTokens);
      const pc = first.stats.prefixCache!;
      // Prompts 0, 3 and 6 compute theirs; the others wait a step for them, then find:
      // SYSTEM's 2 blocks (prompts 1 and 7), its first block (prompt 2: 20 tokens shared),
      // ids(32, 5)'s first block (prompt 4: its last block is recomputed) and both (prompt 5).
      expect(pc.hitTokens).toBe(2 * 32 + 16 + 16 + 32);
      expect(pc.hits).toBe(5);
      expect(pc.queries).toBe(prompts.length);
      expect(first.stats.prefillTokens).toBe(promptTokens - pc.hitTokens);
      expect(ref.stats.prefillTokens).toBe(promptTokens);
      expect(ref.stats.prefixCache).toBeUndefined();

      // The blocks stay cached after their sequences finished (prompt and output blocks alike).
      const second = llm.generateWithStats(prompts, greedy, { decodeText: false });
      expect(second.outputs.map((o) => o.tokenIds)).toEqual(refTokens);
      const hit2 = second.stats.prefixCache!;
      const fullBlocksBeforeLast = prompts.reduce((n, p) => n + 16 * Math.floor((p.length - 1) / 16), 0);
      expect(hit2.hitTokens).toBe(fullBlocksBeforeLast);
      expect(hit2.revivedBlocks).toBeGreaterThan(0);
      expect(second.stats.prefillTokens).toBe(promptTokens - fullBlocksBeforeLast);
    } finally {
      llm.dispose();
    }
  });

  it("gives lesson 12's seeded samples too (its sampler keys each draw by seed and position, not by batch)", () => {
    const seeded = MAX.map((m, i) => new SamplingParams({ temperature: 0.8, topP: 0.9, maxTokens: m, ignoreEos: true, seed: 40 + i }));
    const outputs = (recipe: Recipe) => {
      const llm = create(recipe);
      try {
        const r = llm.generateWithStats(prompts, seeded, { decodeText: false });
        return { tokens: r.outputs.map((o) => o.tokenIds), hit: r.stats.prefixCache?.hitTokens };
      } finally {
        llm.dispose();
      }
    };
    const ref = outputs(sampling), got = outputs(prefixCaching);
    expect(got.tokens).toEqual(ref.tokens);
    expect(got.hit).toBeGreaterThan(0);
    expect(ref.tokens).not.toEqual(refTokens); // sampled, not greedy
  });

  it("gives lesson 12's tokens under a pool that forces preemptions, and every reference comes back", () => {
    const llm = create(prefixCaching, { maxNumSeqs: 8, kvCacheBytes: 9 * BLOCK_BYTES });
    try {
      const { outputs, stats } = llm.generateWithStats(prompts, greedy, { decodeText: false });
      expect(stats.preemptions).toBeGreaterThan(0);
      expect(outputs.map((o) => o.tokenIds)).toEqual(refTokens);
      expect(stats.prefixCache!.hitTokens).toBeGreaterThan(0);
      const sched = llm.parts.scheduler as PrefixCachingScheduler;
      sched.cache.audit();
      expect(sched.cache.usedBlocks).toBe(0);
      expect(sched.cache.freeBlocks).toBe(sched.cache.numBlocks);
    } finally {
      llm.dispose();
    }
  });

  it('an abort in the middle gives its references back; the others still get their tokens', () => {
    const llm = create(prefixCaching);
    try {
      const engine = llm.engine;
      const reqs = prompts.map((p, i) => engine.addRequest(p, greedy[i]!));
      const got = new Map<number, number[]>();
      let steps = 0;
      while (engine.hasWork) {
        for (const d of engine.step().deltas) got.set(d.id, [...(got.get(d.id) ?? []), ...d.tokenIds]);
        if (++steps === 3) expect(engine.abort(reqs[1]!)).toBe(true);
      }
      reqs.forEach((id, i) => {
        if (i !== 1) expect(got.get(id)).toEqual(refTokens[i]);
      });
      const sched = llm.parts.scheduler as PrefixCachingScheduler;
      sched.cache.audit();
      expect(sched.cache.usedBlocks).toBe(0);
    } finally {
      llm.dispose();
    }
  });

  it("the harness starts every run cold: two repeats of the shared-prefix workload's first 16 requests find the same", () => {
    const full = sharedPrefixWorkload();
    const requests = full.requests.slice(0, 16).map((r) => ({ promptIds: r.promptIds, params: new SamplingParams({ temperature: 0, ignoreEos: true, maxTokens: 3 }) }));
    const w: Workload = {
      ...full,
      name: 'shared-prefix-16-short',
      requests,
      totals: { requests: 16, promptTokens: requests.reduce((n, r) => n + r.promptIds.length, 0), outputTokens: 48 },
    };
    const llm = create(prefixCaching);
    try {
      llm.generate(w.requests.map((r) => r.promptIds), requests[0]!.params); // warms the cache: the runs must not see it
      const { runs } = runRepeated(llm, w, { repeats: 2, progress: false, log: () => {} });
      for (const r of runs) {
        // Requests 0-7 compute the 8 prefixes; 8-15 wait one step and find all 1,024 tokens of theirs.
        expect(r.prefixCache).toMatchObject({ queries: 16, hits: 8, hitTokens: 8 * 1024 });
        expect(r.phases.prefillTokens).toBe(w.totals.promptTokens - 8 * 1024);
        expect(r.firstTokenMs?.requests).toBe(16);
      }
    } finally {
      llm.dispose();
    }
  });
});
