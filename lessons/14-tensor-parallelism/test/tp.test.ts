// Lesson 14 on the CPU (tiny model, f32): the ranks are threads meeting in shared
// memory, so the sharding math runs in every CI run. TP=2 (KV heads split) and
// TP=4 (each KV head replicated on two ranks) give TP=1's greedy tokens and its
// logits within float tolerance; each rank loads only its slices; a rank that
// fails stops the others with its message instead of hanging them.
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { Tensor, ops } from '@aios/engine-core';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { EngineOptions, Recipe, StepPlan } from '@aios/engine-core/engine/types.ts';
import { PRESETS } from '@aios/engine-core/model/config.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import { openCheckpoint, writeSafetensors } from '@aios/engine-core/model/safetensors.ts';
import { localConfig, shardLayout } from '@aios/engine-core/model/shard.ts';
import { batchedRecipe, StepInputBuffer } from '@aios/lesson-07-batching';
import { recipe as lesson11 } from '@aios/lesson-11-cuda-graphs';
import { recipe as lesson12 } from '@aios/lesson-12-sampling';

import { compareRows, runForced } from '../../../engine-core/test/forced-path.ts';
import { scratchDir } from '../../../engine-core/test/scratch.ts';

import { type RankCollectives, SharedMemoryCollectives } from '../src/collectives.ts';
import { GroupMemory } from '../src/group-memory.ts';
import { captureAgreed } from '../src/model.ts';
import { decodePlan, encodePlan } from '../src/plan-channel.ts';
import { RankGroup, startRank } from '../src/rank-group.ts';
import { lesson14Parts, recipe, shardRaceEnabled } from '../src/recipe.ts';
import { ShardRaceSampler } from '../src/shard-race.ts';
import { ShardRunner } from '../src/shard-runner.ts';
import { CASE_N, partOf, runCase } from './collectives-case.ts';

const prompts = [11, 40, 1, 33, 70].map((n, p) => Array.from({ length: n }, (_, i) => (p * 7919 + i * 977 + 13) % 150_000));
const MAX = [12, 3, 20, 7, 9];
const greedy = MAX.map((m) => new SamplingParams({ temperature: 0, maxTokens: m, ignoreEos: true }));
const sampled = MAX.map((m, i) => new SamplingParams({ temperature: 0.8, maxTokens: m, ignoreEos: true, seed: 70 + i }));

function run(r: Recipe, params: SamplingParams[], engine: Partial<EngineOptions> = {}) {
  const llm = LLM.create({ recipe: r, device: 'cpu', dtype: 'f32', engine, log: () => {} });
  try {
    const { outputs, stats } = llm.generateWithStats(prompts, params, { decodeText: false });
    return { tokens: outputs.map((o) => o.tokenIds), stats, described: llm.parts.describe?.() ?? [], runner: llm.parts.runner, sampler: llm.parts.sampler };
  } finally {
    llm.dispose();
  }
}

describe('lesson 14: the shard layout', () => {
  const cfg = PRESETS['8B']; // 32 q heads, 8 KV heads

  it('splits q heads, KV heads, MLP features and vocabulary rows evenly', () => {
    const l = shardLayout(cfg, 1, 2);
    expect(l).toMatchObject({ qHeadStart: 16, qHeads: 16, kvHeadStart: 4, kvHeads: 4, kvReplicas: 1, interStart: 6144, inter: 6144, vocabStart: 75968, vocab: 75968 });
    expect(localConfig(cfg, l)).toMatchObject({ numHeads: 16, numKvHeads: 4, intermediateSize: 6144, vocabSize: 75968, hiddenSize: 4096 });
  });

  it('replicates a KV head over the ranks whose q heads read it when ranks exceed KV heads', () => {
    const tiny = PRESETS.tiny; // 4 q heads, 2 KV heads
    const layouts = [0, 1, 2, 3].map((r) => shardLayout(tiny, r, 4));
    expect(layouts.map((l) => [l.qHeadStart, l.kvHeadStart, l.kvHeads, l.kvReplicas])).toEqual([[0, 0, 1, 2], [1, 0, 1, 2], [2, 1, 1, 2], [3, 1, 1, 2]]);
    // q head h reads KV head floor(h / (Hq / Hkv)): 0,1 -> 0 and 2,3 -> 1
    for (const l of layouts) expect(l.kvHeadStart).toBe(Math.floor(l.qHeadStart / (tiny.numHeads / tiny.numKvHeads)));
    // 16 ranks over 8 KV heads of the 32B shape: two ranks a head
    expect(shardLayout(PRESETS['32B'], 15, 16)).toMatchObject({ qHeadStart: 60, qHeads: 4, kvHeadStart: 7, kvHeads: 1, kvReplicas: 2 });
  });

  it('names what does not split', () => {
    expect(() => shardLayout(PRESETS['14B'], 0, 3)).toThrow(/over 3 ranks: the 40 query heads do not split evenly/);
    expect(() => shardLayout(cfg, 0, 0)).toThrow(/positive integer/);
    expect(() => shardLayout(cfg, 2, 2)).toThrow(/rank 2 is outside \[0, 2\)/);
    expect(() => shardLayout({ ...cfg, numKvHeads: 6, numHeads: 24 }, 0, 4)).toThrow(/the 6 KV heads neither split evenly nor replicate evenly/);
  });
});

describe('lesson 14: loading a rank\'s slices', () => {
  it('reads a row or a column slice of a stored tensor, byte for byte what narrowing the whole gives, chunk size aside', () => {
    const dir = scratchDir('aios-tp-slice-');
    const file = path.join(dir, 't.safetensors');
    const data = Float32Array.from({ length: 6 * 10 }, (_, i) => i * 0.5 - 7);
    writeSafetensors(file, [{ name: 'w', dtype: 'f32', shape: [6, 10], data }]);
    for (const chunkBytes of [1, 12, 1 << 20]) {
      const ckpt = openCheckpoint(file, { chunkBytes });
      try {
        const whole = ckpt.load('w', { device: 'cpu' });
        const rows = ckpt.load('w', { device: 'cpu', slice: { dim: 0, start: 2, length: 3 } });
        const cols = ckpt.load('w', { device: 'cpu', slice: { dim: 1, start: 4, length: 5 } });
        const bf = ckpt.load('w', { device: 'cpu', dtype: 'bf16', slice: { dim: 1, start: 7, length: 3 } });
        expect(rows.shape).toEqual([3, 10]);
        expect(cols.shape).toEqual([6, 5]);
        expect(rows.toNumbers()).toEqual(whole.narrow(0, 2, 3).contiguous().toNumbers());
        expect(cols.toNumbers()).toEqual(whole.narrow(1, 4, 5).contiguous().toNumbers());
        expect(bf.toNumbers()).toEqual(ops.cast(whole.narrow(1, 7, 3).contiguous(), 'bf16').toNumbers());
        expect(() => ckpt.load('w', { device: 'cpu', slice: { dim: 1, start: 8, length: 3 } })).toThrow(/slice \[8, 11\) of dimension 1 is outside shape \[6, 10\]/);
        expect(() => ckpt.load('w', { device: 'cpu', slice: { dim: 2, start: 0, length: 1 } })).toThrow(/slice dimension 2/);
      } finally {
        ckpt.close();
      }
    }
  });

  it('a rank holds its heads, features and vocabulary rows of the model, and their sum rebuilds the whole', () => {
    const dir = ensureDefaultModel('cpu', () => {});
    const whole = Qwen3Model.load(dir, { device: 'cpu', dtype: 'f32' });
    const parts = [0, 1].map((r) => Qwen3Model.load(dir, { device: 'cpu', dtype: 'f32', shard: shardLayout(whole.cfg, r, 2) }));
    try {
      const [a, b] = parts.map((p) => p.weights.layers[1]!);
      expect(parts[0]!.cfg).toMatchObject({ numHeads: 2, numKvHeads: 1, intermediateSize: 80, vocabSize: 75968 });
      expect(ops.concat([a!.qProj, b!.qProj], 0).toNumbers()).toEqual(whole.weights.layers[1]!.qProj.toNumbers());
      expect(ops.concat([a!.kProj, b!.kProj], 0).toNumbers()).toEqual(whole.weights.layers[1]!.kProj.toNumbers());
      expect(ops.concat([a!.downProj, b!.downProj], 1).toNumbers()).toEqual(whole.weights.layers[1]!.downProj.toNumbers());
      expect(ops.concat([a!.oProj, b!.oProj], 1).toNumbers()).toEqual(whole.weights.layers[1]!.oProj.toNumbers());
      expect(a!.inputNorm.toNumbers()).toEqual(whole.weights.layers[1]!.inputNorm.toNumbers());
      // The vocabulary rows either side of the split (comparing all 151,936 rows is slow to no purpose).
      expect(parts[0]!.weights.embed.narrow(0, 75966, 2).toNumbers()).toEqual(whole.weights.embed.narrow(0, 75966, 2).toNumbers());
      expect(parts[1]!.weights.embed.narrow(0, 0, 2).toNumbers()).toEqual(whole.weights.embed.narrow(0, 75968, 2).toNumbers());
      expect(parts[1]!.weights.embed.shape).toEqual([75968, 64]);
    } finally {
      whole.dispose();
      for (const p of parts) p.dispose();
    }
  });

  it('the vocab-parallel lookup: each rank its rows, zeros elsewhere, the sum is the embedding', () => {
    const table = Tensor.fromArray(Float32Array.from({ length: 8 * 3 }, (_, i) => i + 1), [8, 3], { dtype: 'f32', device: 'cpu' });
    const ids = Tensor.fromArray(Int32Array.of(0, 5, 3, 7, 4), [5], { dtype: 'i32', device: 'cpu' });
    const halves = [0, 1].map((r) => ops.embeddingShard(table.narrow(0, 4 * r, 4).contiguous(), ids, 8, 4 * r));
    expect(halves[0]!.toNumbers().slice(3, 6)).toEqual([0, 0, 0]); // id 5 lives on rank 1
    expect(ops.add(halves[0]!, halves[1]!).toNumbers()).toEqual(ops.embedding(table, ids).toNumbers());
    const bad = Tensor.fromArray(Int32Array.of(8), [1], { dtype: 'i32', device: 'cpu' });
    expect(() => ops.embeddingShard(table.narrow(0, 4, 4).contiguous(), bad, 8, 4)).toThrow(/token id 8 at position 0 is outside the vocabulary \[0, 8\)/);
    expect(() => ops.embeddingShard(table, ids, 8, 4)).toThrow(/rows \[4, 12\) are not inside the vocabulary of 8/);
  });
});

describe("lesson 14's environment switches", () => {
  it('AIOS_TP_SAMPLE: the race unless gather; anything else refused with the list', () => {
    const before = process.env.AIOS_TP_SAMPLE;
    try {
      delete process.env.AIOS_TP_SAMPLE;
      expect(shardRaceEnabled(2, PRESETS['0.6B'])).toBe(true);
      process.env.AIOS_TP_SAMPLE = 'gather';
      expect(shardRaceEnabled(2, PRESETS['0.6B'])).toBe(false);
      process.env.AIOS_TP_SAMPLE = 'Race';
      expect(() => shardRaceEnabled(2, PRESETS['0.6B'])).toThrow('AIOS_TP_SAMPLE must be one of race, gather, got "Race"');
    } finally {
      if (before === undefined) delete process.env.AIOS_TP_SAMPLE;
      else process.env.AIOS_TP_SAMPLE = before;
    }
  });
});

describe('lesson 14: the step plan rank 0 hands on', () => {
  it('rebuilds the same packed step on another rank, prefill chunks and decode rows alike', () => {
    const a = new Sequence([5, 6, 7, 8, 9], new SamplingParams());
    const b = new Sequence([1, 2, 3], new SamplingParams());
    b.cachedTokens = 1;
    (b.outputIds as number[]).push(44);
    b.cachedTokens = 3; // decoding its output token 44 at position 3
    const plan: StepPlan = { sequences: [a, b], newTokens: [3, 1], phase: 'mixed', blockTables: [[4], [7, 2]] };
    const buf = new Int32Array(64);
    const back = decodePlan(buf, encodePlan(plan, buf));
    const steps = [plan, back].map((p) => {
      const input = new StepInputBuffer({ maxTokens: 16, maxSeqs: 4, maxBlocksPerSeq: 4 }, 4, 'cpu');
      const s = input.build(p);
      return [s.ids, s.positions, s.slotMapping, s.lastTokenIndex, s.meta.cuSeqlensQ, s.meta.contextLens, s.meta.blockTables].map((t) => t.toNumbers());
    });
    expect(steps[1]).toEqual(steps[0]);
    expect(steps[0]![3]).toEqual([3]); // a's chunk stops short of its last token: only b samples
    // A rank holds only the step's tokens of each sequence, and a cut plan is an error, not a short step.
    expect(back.sequences[1]!.tokenAt(3)).toBe(44);
    expect(() => back.sequences[1]!.tokenAt(2)).toThrow(/token 2 is not in this step/);
    expect(() => decodePlan(buf, encodePlan(plan, buf) - 1)).toThrow(/ends early/);
  });
});

describe('lesson 14 on the CPU: TP=2 and TP=4 against TP=1', () => {
  for (const [name, params] of [['greedy', greedy], ['seeded samples', sampled]] as const)
    it(`${name}: the same tokens over 1, 2 and 4 ranks (threads)`, () => {
      const ref = run(recipe, params, { maxNumSeqs: 8 });
      expect(ref.tokens).toEqual(run(lesson12, params, { maxNumSeqs: 8 }).tokens); // one rank is lesson 12
      for (const tp of [2, 4]) {
        const r = run(recipe, params, { maxNumSeqs: 8, tensorParallelSize: tp });
        expect(r.tokens).toEqual(ref.tokens);
        expect(r.runner).toBeInstanceOf(ShardRunner);
        expect(r.described.join('\n')).toMatch(new RegExp(`rank 0 of ${tp} holds q heads`));
        // Every step's rows had a temperature (or none) and a seed: each rank raced its vocabulary slice.
        expect(r.sampler).toBeInstanceOf(ShardRaceSampler);
        const steps = (r.sampler as ShardRaceSampler).steps;
        expect(steps.raced).toBeGreaterThan(0);
        expect(steps.gathered).toBe(0);
      }
    });

  it('a step with a filtered row gathers the logits instead (and AIOS_TP_SAMPLE=gather always does): the same tokens', () => {
    const mixed = sampled.map((p, i) => (i === 1 ? new SamplingParams({ temperature: 0.8, topK: 5, maxTokens: MAX[i]!, ignoreEos: true, seed: 90 }) : p));
    const ref = run(recipe, mixed, { maxNumSeqs: 8 });
    const r = run(recipe, mixed, { maxNumSeqs: 8, tensorParallelSize: 2 });
    expect(r.tokens).toEqual(ref.tokens);
    const steps = (r.sampler as ShardRaceSampler).steps;
    expect(steps.gathered).toBeGreaterThan(0); // while request 1 runs (3 tokens)
    expect(steps.raced).toBeGreaterThan(0); // after it, the others' steps race
    const before = process.env.AIOS_TP_SAMPLE;
    process.env.AIOS_TP_SAMPLE = 'gather';
    try {
      const g = run(recipe, sampled, { maxNumSeqs: 8, tensorParallelSize: 2 });
      expect(g.sampler).not.toBeInstanceOf(ShardRaceSampler);
      expect(g.tokens).toEqual(run(recipe, sampled, { maxNumSeqs: 8 }).tokens);
    } finally {
      if (before === undefined) delete process.env.AIOS_TP_SAMPLE;
      else process.env.AIOS_TP_SAMPLE = before;
    }
  });

  it('the logits along one forced path agree within float tolerance (the row-parallel sums add in another order)', () => {
    const path = { promptLengths: [11, 40, 130, 1], steps: 6 };
    const one = runForced(recipe, path, { device: 'cpu', dtype: 'f32', engine: { maxNumSeqs: 8 } }).rows;
    for (const tp of [2, 4]) {
      const c = compareRows(runForced(recipe, path, { device: 'cpu', dtype: 'f32', engine: { maxNumSeqs: 8, tensorParallelSize: tp } }).rows, one);
      expect(c.relError).toBeLessThan(1e-5);
      expect(c.argmaxAgreement).toBe(1);
    }
  });

  it('with preemptions (a pool too small for every sequence) the ranks still agree', () => {
    // kvCacheBytes is each rank's pool: a rank of 2 holds one of the 2 KV heads, so the same bytes give the
    // same 6 blocks as one rank holding both heads at half the bytes.
    const blockBytes = 2 * 3 * 1 * 32 * 4 * 16; // K and V, 3 layers, 1 KV head, head_dim 32, f32, 16 tokens
    const ref = run(recipe, greedy, { kvCacheBytes: 6 * 2 * blockBytes, maxNumSeqs: 8 });
    const r = run(recipe, greedy, { kvCacheBytes: 6 * blockBytes, maxNumSeqs: 8, tensorParallelSize: 2 });
    expect(ref.stats.preemptions).toBeGreaterThan(0);
    expect(r.tokens).toEqual(ref.tokens);
    expect(r.stats.preemptions).toBe(ref.stats.preemptions);
  });

  it('refuses a split the model does not allow, and a lesson before 14', () => {
    expect(() => LLM.create({ recipe, device: 'cpu', dtype: 'f32', engine: { tensorParallelSize: 3 }, log: () => {} })).toThrow(/over 3 ranks: the 4 query heads do not split evenly/);
    expect(() => LLM.create({ recipe: lesson11, device: 'cpu', dtype: 'f32', engine: { tensorParallelSize: 2 }, log: () => {} })).toThrow(/lesson 11 \(cuda-graphs\) runs on one device/);
  });
});

describe('lesson 14: the shared-memory collectives between threads', () => {
  it('all-reduce (f32 and bf16, in chunks), all-gather and broadcast over 3 ranks give every rank the same right values', () => {
    const size = 3;
    const mem = GroupMemory.create({ size, planInts: 4, slotBytes: 1024 });
    const workers = [1, 2].map((rank) => startRank({ sab: mem.sab, shape: mem.shape, rank, entry: new URL('./collectives-rank.ts', import.meta.url).href }));
    const got = runCase(new SharedMemoryCollectives(mem, 0, 20_000));
    mem.waitExited(2);
    mem.checkAbort(0);
    const parts = [0, 1, 2].map((r) => partOf(r));
    // The sum in rank order, rounded to f32 at each add, as every rank computes it.
    const sumF32 = parts[0]!.map((_, i) => Math.fround(Math.fround(Math.fround(0 + parts[0]![i]!) + parts[1]![i]!) + parts[2]![i]!));
    expect(got.f32!.toArray()).toEqual(sumF32);
    // bf16: the inputs rounded to bf16, summed in f32, the sum rounded once (the CPU reference's add, twice, rounds twice).
    const bf = parts.map((p) => ops.cast(Tensor.fromArray(p, [CASE_N], { dtype: 'f32', device: 'cpu' }), 'bf16').toArray() as Float32Array);
    const sumBf = ops.cast(Tensor.fromArray(bf[0]!.map((_, i) => Math.fround(Math.fround(bf[0]![i]! + bf[1]![i]!) + bf[2]![i]!)), [CASE_N], { dtype: 'f32', device: 'cpu' }), 'bf16');
    expect(got.bf16!.toArray()).toEqual(sumBf.toArray());
    const all = got.gathered!.toArray() as Float32Array;
    parts.forEach((p, r) => expect(all.subarray(r * CASE_N, (r + 1) * CASE_N)).toEqual(p));
    expect(got.b!.toArray()).toEqual(partOf(7));
    // The votes (the CUDA graph agreement): a refusal anywhere is a refusal everywhere, naming the first refuser.
    expect(got.votes).toEqual([{ ok: true }, { ok: false, refusedBy: 1 }, { ok: true }, { ok: false, refusedBy: expect.any(Number) }, { ok: true }]);
    expect([1, 2]).toContain(got.votes[3]!.refusedBy);
    for (const w of workers) void w.terminate();
  });

  it('a capture is kept only if every rank captured: a refusal disposes the graph and says why', () => {
    const mem = GroupMemory.create({ size: 1, planInts: 4, slotBytes: 8 });
    const comm = new SharedMemoryCollectives(mem, 0, 5_000);
    let disposed = 0;
    const graph = { dispose: () => void disposed++ };
    expect(captureAgreed(comm, () => graph, 'a decode graph')).toEqual({ graph });
    const refused = captureAgreed(comm, () => {
      throw new Error('operation not permitted when stream is capturing');
    }, 'a decode graph');
    expect(refused.graph).toBeUndefined();
    expect(refused.reason).toMatch(/rank 0 could not capture a decode graph: operation not permitted when stream is capturing/);
    expect(disposed).toBe(0);
    // Another rank refused (its vote, as the shared memory would give it): this rank's graph goes too.
    const peerRefused = { ...comm, rank: 0, agree: () => ({ ok: false, refusedBy: 1 }) } as unknown as RankCollectives;
    expect(captureAgreed(peerRefused, () => graph, 'a decode graph')).toEqual({ reason: 'rank 1 could not capture a decode graph' });
    expect(disposed).toBe(1);
  });
});

describe('lesson 14: a rank that fails does not hang the others', () => {
  it('a barrier that one rank never reaches ends in a timeout naming it', () => {
    const mem = GroupMemory.create({ size: 2, planInts: 4, slotBytes: 8 });
    const t0 = performance.now();
    expect(() => mem.barrier(0, 'the test', 150)).toThrow(/rank 0 waited 150 ms at the test and only 1 of 2 ranks arrived/);
    expect(performance.now() - t0).toBeLessThan(5000);
    // The group is now failed: the next wait throws at once.
    expect(() => mem.barrier(0, 'again', 60_000)).toThrow(/waited 150 ms/);
  });

  it('a worker that cannot build its rank stops rank 0 with the worker\'s message', () => {
    const broken: Recipe = {
      ...batchedRecipe('broken', 14, 'a worker imports parts that do not exist', {
        ...lesson14Parts,
        runner: (ctx, attention, model) => {
          const group = RankGroup.start(ctx, { module: new URL('../src/recipe.ts', import.meta.url).href, name: 'noSuchParts' });
          try {
            return new ShardRunner(group.ctx, attention, model, group);
          } catch (e) {
            group.abort(String(e));
            throw e;
          }
        },
      }),
      tensorParallel: true,
    };
    expect(() => LLM.create({ recipe: broken, device: 'cpu', dtype: 'f32', engine: { tensorParallelSize: 2, maxNumSeqs: 4 }, log: () => {} })).toThrow(
      /rank 1 failed: rank 1 \(cpu\): .*recipe\.ts does not export noSuchParts/,
    );
  });
});
