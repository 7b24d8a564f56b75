// Lesson 13's cascade decode on CUDA:
//   1. the kernels (shared splits per group, decode v3 for the own keys, the combine) against the
//      CPU reference on random shared-prefix decode steps, and against lesson 09's decode v3 on the
//      GPU; every output poisoned with NaN first; each run twice (the same bits, or there is a race);
//      also under a context bound far past the step's (a captured graph's bucket);
//   2. a micro-benchmark on the shared-prefix workload's shape (8 groups of 32 sequences over
//      1,024-token prefixes, Qwen3-0.6B's heads): time per call and keys read, cascade vs decode v3;
//   3. lesson 13's greedy tokens with and without the cascade (bf16, Qwen3-0.6B): the same, or
//      diverging only at a near tie, and every logits row up to a divergence within bf16 tolerance.
// Skips, saying so, where no GPU is usable (the emulator checks the kernels in flash-emu.test.ts).
import { describe, expect, it } from 'vitest';

import { type Device, Tensor, cudaAvailable, ops, synchronize } from '@aios/engine-core';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { Recipe, SampleResult } from '@aios/engine-core/engine/types.ts';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';

import { type CascadeCase, buildCascadeStep, cascadeName, randomCascadeCase, sharedPrefixCase } from '../../../engine-core/test/cascade-cases.ts';
import { FLASH_TOLERANCE, mismatch, upload } from '../../../engine-core/test/flash-cases.ts';
import { type Rows, compareRows } from '../../../engine-core/test/forced-path.ts';
import { poisoned } from '../../../engine-core/test/helpers.ts';
import { recipe as cascade, recipeWithoutCascade as plain } from '../src/recipe.ts';

// AIOS_CASCADE_TEST_DEVICE=cpu walks the suite on the CPU (the kernel part: the reference against
// itself; the engine part: the tiny test model in f32): a dry run of the harness without a GPU.
const dryRun = process.env.AIOS_CASCADE_TEST_DEVICE === 'cpu';
const hasGpu = cudaAvailable();
if (!hasGpu) console.log(`lesson 13 cascade.gpu.test: ${dryRun ? 'dry run on the CPU' : 'skipped'}: no usable CUDA device on this machine (flash-emu.test.ts runs the kernels on the CPU emulator)`);
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;
const dev: Device = dryRun ? 'cpu' : 'cuda:0';

const CASES: CascadeCase[] = [
  ...Array.from({ length: 6 }, (_, i) => randomCascadeCase(seed + 101 * i, { kvHeads: [1, 2, 8][i % 3]!, group: [2, 4, 1, 8, 16, 2][i]!, headDim: i % 2 ? 64 : 128, blockSize: [16, 32, 16][i % 3]!, dtype: i % 3 === 2 ? 'f16' : 'bf16', boost: i % 2 ? 4 : 1 }, 6, 40)),
  sharedPrefixCase(8, 32, 1024, seed, { kvHeads: 8, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16' }),
  sharedPrefixCase(3, 70, 600, seed + 1, { kvHeads: 2, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16', boost: 3 }),
];

describe.skipIf(!hasGpu && !dryRun)(`lesson 13 cascade decode kernels on CUDA (seed ${seed})`, () => {
  CASES.forEach((c, n) => {
    it(cascadeName(c), () => {
      const step = buildCascadeStep(c, seed + 7 * n);
      const shape = [step.tokens, step.qHeads, c.headDim];
      const host = upload(step, 'cpu');
      const ref = poisoned(shape, c.dtype, 'cpu');
      ops.flashCascadeDecode(host.q, host.k, host.v, host.meta, ref);
      const refArr = ref.toArray() as Float32Array;
      const t = upload(step, dev);
      const tol = FLASH_TOLERANCE[c.dtype as 'bf16' | 'f16'];
      const runs: Float32Array[] = [];
      for (const bound of [step.maxContextLen, Math.max(4096, step.maxContextLen)]) {
        // the bound past the step's: more (empty) splits and windows, as in a captured graph's bucket
        const maxBlocks = Math.ceil(bound / c.blockSize);
        const tables = new Int32Array(step.ctx.length * maxBlocks).fill(-1);
        for (let b = 0; b < step.ctx.length; b++) tables.set(step.tables.subarray(b * step.maxBlocks, (b + 1) * step.maxBlocks), b * maxBlocks);
        const blockTables = Tensor.fromArray(tables, [step.ctx.length, maxBlocks], { dtype: 'i32', device: dev });
        const meta = { ...t.meta, blockTables, maxContextLen: bound };
        for (let rep = 0; rep < 2; rep++) {
          const out = poisoned(shape, c.dtype, dev);
          ops.flashCascadeDecode(t.q, t.k, t.v, meta, out);
          runs.push(out.toArray() as Float32Array);
          out.dispose();
        }
        blockTables.dispose();
      }
      const v3 = poisoned(shape, c.dtype, dev);
      ops.flashDecode(t.q, t.k, t.v, t.meta, v3, { version: 3 });
      const m = mismatch(step, runs[0]!, refArr);
      const mv3 = mismatch(step, runs[0]!, v3.toArray() as Float32Array);
      console.log(`cascade ${cascadeName(c)}: vs CPU rel ${m.relError.toExponential(2)}, vs decode v3 rel ${mv3.relError.toExponential(2)}`);
      expect(m.nan, `NaN or unwritten: ${m.where}`).toBe(0);
      expect(m.relError, m.where).toBeLessThan(tol);
      expect(mv3.relError, mv3.where).toBeLessThan(tol);
      expect(Buffer.from(runs[1]!.buffer).equals(Buffer.from(runs[0]!.buffer)), 'two runs differ: a race').toBe(true);
      expect(mismatch(step, runs[2]!, refArr).relError, 'under the 4096-token bound').toBeLessThan(tol);
      [ref, v3].forEach((x) => x.dispose());
      host.dispose();
      t.dispose();
    });
  });

  it("micro-benchmark on the shared-prefix workload's shape: time and keys read, cascade vs decode v3", () => {
    const c = sharedPrefixCase(8, 32, 1024, seed, { kvHeads: 8, group: 2, headDim: 128, blockSize: 16, dtype: 'bf16' });
    const step = buildCascadeStep(c, seed);
    // Keys per KV head: each group's 1,024-token prefix (4 shared splits) once, then every sequence's own.
    const plainKeys = step.ctx.reduce((n, x) => n + x, 0);
    const cascadeKeys = 8 * 1024 + step.ctx.reduce((n, x) => n + x - 1024, 0);
    const host = upload(step, 'cpu');
    const stats = { keysRead: 0 };
    ops.flashCascadeDecode(host.q, host.k, host.v, host.meta, undefined, { stats }); // what the kernels' division reads
    host.dispose();
    expect(stats.keysRead).toBe(cascadeKeys);
    const t = upload(step, dev);
    const out = Tensor.empty([step.tokens, step.qHeads, c.headDim], { dtype: c.dtype, device: dev });
    const cplan = ops.flashCascadePlan({ device: dev, numSeqs: step.ctx.length, numTokens: step.tokens, qHeads: step.qHeads, kvHeads: c.kvHeads, headDim: c.headDim, maxContextLen: step.maxContextLen });
    const dplan = ops.flashDecodePlan({ device: dev, version: 3, numSeqs: step.ctx.length, numTokens: step.tokens, qHeads: step.qHeads, kvHeads: c.kvHeads, headDim: c.headDim, maxQLen: 1, maxContextLen: step.maxContextLen });
    const ws = Tensor.empty([Math.ceil(Math.max(cplan.workspaceBytes, dplan.workspaceBytes, 4) / 4)], { dtype: 'f32', device: dev });
    const time = (fn: () => void): number => {
      for (let i = 0; i < (dryRun ? 1 : 5); i++) fn();
      synchronize(dev);
      const n = dryRun ? 1 : 50, t0 = performance.now();
      for (let i = 0; i < n; i++) fn();
      synchronize(dev);
      return ((performance.now() - t0) / n) * 1000;
    };
    const usCascade = time(() => ops.flashCascadeDecode(t.q, t.k, t.v, t.meta, out, { workspace: ws }));
    const usV3 = time(() => ops.flashDecode(t.q, t.k, t.v, t.meta, out, { version: 3, workspace: ws }));
    const kvBytes = (keys: number) => keys * c.kvHeads * c.headDim * 2 * 2; // K and V, bf16, one layer
    console.log(`cascade micro-benchmark (${step.ctx.length} sequences, 8 prefixes of 1,024 tokens, one layer): cascade ${usCascade.toFixed(1)} us reading ${(kvBytes(cascadeKeys) / 1e6).toFixed(1)} MB of K/V; decode v3 ${usV3.toFixed(1)} us reading ${(kvBytes(plainKeys) / 1e6).toFixed(1)} MB`);
    [out, ws].forEach((x) => x.dispose());
    t.dispose();
  });
});

const ids = (n: number, s: number) => Array.from({ length: n }, (_, i) => (s * 7919 + i * 977 + 13) % 150_000);
// 3 prefixes x 6 questions: groups of up to 6 in each decode step, prefixes of 1, 2 and 3 shared splits.
const PREFIXES = [ids(300, 1), ids(600, 2), ids(1000, 3)];
const prompts = Array.from({ length: 18 }, (_, i) => [...PREFIXES[i % 3]!, ...ids(10 + 5 * i, 200 + i)]);

function engine(recipe: Recipe): LLM {
  // A fixed pool (4 GiB: 37,000 tokens of Qwen3-0.6B, these prompts need under 25,000): the engine
  // does not measure free memory, which another GPU test file running at the same time may be taking.
  const limits = { maxNumBatchedTokens: 4096, maxNumSeqs: 32, ...(dryRun ? {} : { kvCacheBytes: 4 * 2 ** 30 }) };
  if (dryRun) return LLM.create({ recipe, device: 'cpu', dtype: 'f32', engine: limits, log: () => {} }); // the tiny test model
  const model = ensureDefaultModel('gpu', () => {});
  return LLM.create({ recipe, model, device: dev, dtype: 'bf16', engine: limits, log: () => {} });
}

/** Greedy decoding with every logits row recorded ("prompt:step"), one engine per recipe. */
function greedyRun(recipe: Recipe): { tokens: number[][]; rows: Rows } {
  const lengths = prompts.map((p) => p.length);
  const rows: Rows = new Map();
  const recording: Recipe = {
    ...recipe,
    build(ctx) {
      return {
        ...recipe.build(ctx),
        sampler: {
          sample(logits, seqs: readonly Sequence[]): SampleResult {
            const all = logits.toArray() as Float32Array, V = logits.shape[1]!;
            return {
              tokens: seqs.map((sq, i) => {
                const row = all.slice(i * V, (i + 1) * V);
                rows.set(`${lengths.indexOf(sq.promptIds.length)}:${sq.outputIds.length}`, row);
                let best = 0;
                for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
                return best;
              }),
            };
          },
        },
      };
    },
  };
  const llm = engine(recording);
  try {
    const tokens = llm.generate(prompts, new SamplingParams({ temperature: 0, maxTokens: 24, ignoreEos: true }), { decodeText: false }).map((o) => o.tokenIds);
    return { tokens, rows };
  } finally {
    llm.dispose();
  }
}

describe.skipIf(!hasGpu && !dryRun)('lesson 13 with and without the cascade decode (bf16, Qwen3-0.6B)', () => {
  it('gives the same greedy tokens (any divergence at a near tie) and logits within bf16 tolerance', () => {
    expect(new Set(prompts.map((p) => p.length)).size).toBe(prompts.length); // a sequence is known by its prompt length
    const withCascade = greedyRun(cascade), without = greedyRun(plain);
    // Rows are comparable up to each request's first differing token (the same context until then).
    const a: Rows = new Map(), b: Rows = new Map();
    const differ: string[] = [];
    prompts.forEach((_, p) => {
      const x = withCascade.tokens[p]!, y = without.tokens[p]!;
      let j = 0;
      while (j < x.length && x[j] === y[j]) j++;
      for (let k = 0; k <= Math.min(j, x.length - 1); k++) {
        a.set(`${p}:${k}`, withCascade.rows.get(`${p}:${k}`)!);
        b.set(`${p}:${k}`, without.rows.get(`${p}:${k}`)!);
      }
      if (j < x.length) {
        const row = without.rows.get(`${p}:${j}`)!;
        const gap = row[y[j]!]! - row[x[j]!]!; // how far the cascade's pick is below the plain decode's, in the plain row
        differ.push(`request ${p} at token ${j} (logit gap ${gap.toFixed(3)})`);
        expect(gap, `request ${p} diverges at token ${j} without a near tie`).toBeLessThan(0.25);
      }
    });
    const c = compareRows(a, b);
    console.log(`lesson 13 cascade vs plain decode on CUDA bf16: ${prompts.length - differ.length} of ${prompts.length} greedy requests identical${differ.length ? ` (${differ.join('; ')})` : ''}; logits rel. error ${c.relError.toExponential(2)}, max abs ${c.maxAbs.toExponential(2)}, argmax agreement ${c.argmaxAgreement.toFixed(3)}`);
    expect(c.relError).toBeLessThan(2e-2);
    // How many requests diverge is not bounded: the random-weight model's logits are flat (on the
    // H200, commit bde932a, 12 of 18 requests met a top-two gap under 0.025 within 18 tokens and
    // went apart there), and bf16 sums in another order settle such ties either way. Each
    // divergence is a near tie (checked above), and the rows agree up to it.
    expect(c.argmaxAgreement).toBeGreaterThan(0.9);
  }, 600_000);
});
