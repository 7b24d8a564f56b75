// The batched runtime on the CPU (tiny model, f32): lessons 07 and 08 compute
// what lesson 06 computes, token for token; a pool too small for the workload
// forces preemptions that change nothing but the time; every block comes back;
// and the engine's step API survives aborts in the middle of a chunked prefill
// and of decoding.
import { describe, expect, it } from 'vitest';

import { Engine } from '@aios/engine-core/engine/engine.ts';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { EngineOptions, Recipe } from '@aios/engine-core/engine/types.ts';
import { pagedRecipe } from '@aios/lesson-06-paged-kv-cache';
import { recipe as batching } from '@aios/lesson-07-batching';

import { recipe as continuous } from '../src/recipe.ts';

const paged = pagedRecipe({ warmupTokens: 64, cpuPoolBytes: 8 * 2 ** 20 });

// Prompt lengths on both sides of block boundaries, one of a single token; output lengths all different.
const PROMPT_LENGTHS = [11, 40, 1, 33, 16, 70, 5];
const prompts = PROMPT_LENGTHS.map((n, p) => Array.from({ length: n }, (_, i) => (p * 7919 + i * 977 + 13) % 150_000));
const MAX_TOKENS = [12, 3, 20, 7, 16, 9, 25];
const greedy = MAX_TOKENS.map((m) => new SamplingParams({ temperature: 0, maxTokens: m, ignoreEos: true }));
const sampled = MAX_TOKENS.map((m, i) => new SamplingParams({ temperature: 0.9, maxTokens: m, ignoreEos: true, seed: 500 + i }));

/** The tiny model's KV bytes per block of 16 tokens in f32: 2 x 3 layers x 2 KV heads x 32 dims x 4 bytes x 16. */
const BLOCK_BYTES = 2 * 3 * 2 * 32 * 4 * 16;

function create(recipe: Recipe, engine: Partial<EngineOptions> = {}): LLM {
  return LLM.create({ recipe, device: 'cpu', dtype: 'f32', engine, log: () => {} });
}

function run(recipe: Recipe, params: SamplingParams[], engine: Partial<EngineOptions> = {}) {
  const llm = create(recipe, engine);
  try {
    const { outputs, stats } = llm.generateWithStats(prompts, params, { decodeText: false });
    return { tokens: outputs.map((o) => o.tokenIds), outputs, stats, after: llm.parts.scheduler.stats?.() };
  } finally {
    llm.dispose();
  }
}

describe('lessons 07 and 08 on the CPU (f32)', () => {
  const ref = run(paged, greedy);
  const refSampled = run(paged, sampled);

  it('lesson 06 runs one sequence per step; 07 and 08 run many', () => {
    const b7 = run(batching, greedy), b8 = run(continuous, greedy);
    expect(ref.stats.steps).toBe(MAX_TOKENS.reduce((a, b) => a + b, 0));
    // Static batch: one prefill step for all, then as many decode steps as the longest request needs.
    expect(b7.stats.steps).toBe(1 + Math.max(...MAX_TOKENS) - 1);
    expect(b8.stats.steps).toBe(b7.stats.steps);
  });

  it('07 and 08 generate lesson 06 greedy tokens, token for token', () => {
    expect(run(batching, greedy).tokens).toEqual(ref.tokens);
    expect(run(continuous, greedy).tokens).toEqual(ref.tokens);
  });

  it('07 and 08 generate lesson 06 sampled tokens with the same seeds', () => {
    expect(new Set(refSampled.tokens.flat()).size).toBeGreaterThan(20);
    expect(run(batching, sampled).tokens).toEqual(refSampled.tokens);
    expect(run(continuous, sampled).tokens).toEqual(refSampled.tokens);
  });

  it('static batches split by the sequence limit and the token budget give the same tokens', () => {
    const r = run(batching, greedy, { maxNumSeqs: 3, maxNumBatchedTokens: 32 });
    expect(r.tokens).toEqual(ref.tokens);
    // Three batches of at most 3 in arrival order, each as long as its longest member, prefills chunked by 32 tokens.
    expect(r.stats.steps).toBeGreaterThan(3 * 20);
  });

  it('a pool of 9 blocks forces preemptions; every request finishes with the same tokens and every block comes back', () => {
    for (const params of [greedy, sampled]) {
      const want = params === greedy ? ref.tokens : refSampled.tokens;
      const r = run(continuous, params, { kvCacheBytes: 9 * BLOCK_BYTES });
      expect(r.stats.preemptions, 'preemptions').toBeGreaterThan(0);
      expect(r.outputs.some((o) => o.preemptions > 0)).toBe(true);
      expect(r.tokens).toEqual(want);
      expect(r.outputs.every((o) => o.finishReason === 'length')).toBe(true);
      expect(r.after).toMatchObject({ usedBlocks: 0, totalBlocks: 9, waiting: 0, running: 0 });
      // Static batching never preempts: it admits only what its worst case fits, and still finishes everything.
      const s = run(batching, params, { kvCacheBytes: 9 * BLOCK_BYTES });
      expect(s.stats.preemptions).toBe(0);
      expect(s.tokens).toEqual(want);
      expect(s.after).toMatchObject({ usedBlocks: 0, totalBlocks: 9 });
    }
  });

  it('refuses a request that could never fit the pool, naming the numbers', () => {
    const llm = create(continuous, { kvCacheBytes: 2 * BLOCK_BYTES });
    try {
      expect(() => llm.generate([prompts[5]!], new SamplingParams({ maxTokens: 4 }))).toThrow(/^generate: prompt 0: the request needs up to 5 KV blocks \(70 prompt \+ 4 max tokens, 16 per block\) but the pool holds 2/);
      expect(llm.parts.scheduler.stats?.()).toMatchObject({ usedBlocks: 0, waiting: 0, running: 0 });
    } finally {
      llm.dispose();
    }
  });
});

describe('the engine step API (lesson 08)', () => {
  const opts = { maxNumSeqs: 4, maxNumBatchedTokens: 16 }; // a 70-token prompt takes five prefill steps

  it('streams deltas, aborts in the middle of a chunked prefill and of decoding, and frees the blocks at once', () => {
    const llm = create(continuous, opts);
    try {
      const engine: Engine = llm.engine;
      const long = engine.addRequest(prompts[5]!, greedy[5]!); // 70 tokens: prefill in chunks of 16
      const steps: ReturnType<Engine['step']>[] = [];
      steps.push(engine.step());
      expect(steps[0]!.phase).toBe('prefill');
      expect(steps[0]!.deltas).toEqual([]); // a chunk short of the prompt's end samples nothing
      const usedMidPrefill = llm.parts.scheduler.stats!().usedBlocks!;
      expect(usedMidPrefill).toBe(1);
      expect(engine.abort(long)).toBe(true);
      expect(engine.abort(long)).toBe(false);
      expect(llm.parts.scheduler.stats!()).toMatchObject({ usedBlocks: 0, running: 0, waiting: 0 });

      const a = engine.addRequest(prompts[0]!, greedy[0]!);
      const b = engine.addRequest(prompts[1]!, greedy[1]!, { detokenize: true });
      const got = new Map<number, number[]>([[a, []], [b, []]]);
      let text = '';
      let abortedB = false;
      while (engine.hasWork) {
        const r = engine.step();
        for (const d of r.deltas) {
          got.get(d.id)!.push(...d.tokenIds);
          if (d.id === b) text += d.text;
        }
        // Abort b once it has decoded one token past its first.
        if (!abortedB && got.get(b)!.length === 2) {
          expect(engine.abort(b)).toBe(true);
          abortedB = true;
        }
      }
      const want = run(paged, greedy).tokens;
      expect(got.get(a)).toEqual(want[0]);
      expect(got.get(b)).toEqual(want[1]!.slice(0, 2));
      expect(text).toBe(llm.tokenizer.decode(want[1]!.slice(0, 2), { skipSpecialTokens: true }));
      expect(llm.parts.scheduler.stats!()).toMatchObject({ usedBlocks: 0, running: 0, waiting: 0 });
      expect(engine.pending).toBe(0);
    } finally {
      llm.dispose();
    }
  });

  it('stop strings end a request and the streamed text never shows them', () => {
    const llm = create(continuous);
    try {
      // Sampled with a seed (this random model's greedy output repeats one token): the same seed replays the same tokens up to the stop.
      const params = (seed: number, stop?: string[]) => new SamplingParams({ temperature: 1, maxTokens: 12, ignoreEos: true, seed, ...(stop ? { stop } : {}) });
      let seed = 0, before = '', stopAt = '';
      for (; seed < 20; seed++) {
        const free = llm.generate([prompts[3]!], params(seed))[0]!;
        // Stop at the text of the output's 4th and 5th tokens: what came before is all the client may see.
        before = llm.tokenizer.decode(free.tokenIds.slice(0, 3), { skipSpecialTokens: true });
        stopAt = llm.tokenizer.decode(free.tokenIds.slice(3, 5), { skipSpecialTokens: true });
        if (stopAt.trim().length > 0 && !(before + stopAt).slice(0, -1).includes(stopAt)) break;
      }
      expect(seed, 'a seed whose output gives a usable stop string').toBeLessThan(20);
      const id = llm.engine.addRequest(prompts[3]!, params(seed, [stopAt]), { detokenize: true });
      let text = '';
      let reason: string | undefined;
      while (llm.engine.hasWork)
        for (const d of llm.engine.step().deltas) {
          if (d.id !== id) continue;
          text += d.text;
          reason = d.finishReason;
        }
      expect(reason).toBe('stop');
      expect(text).toBe(before);
    } finally {
      llm.dispose();
    }
  });
});
