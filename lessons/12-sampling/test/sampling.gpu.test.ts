// Lesson 12 on CUDA: every sampling kernel (penalize, thresholds, race, combine,
// restore, log-probs) against the CPU reference on random logits at Qwen3's
// vocabulary (151,936) and 256 rows; chi-square of the GPU's draws per filter;
// a seeded row's tokens alone and among 255 others; greedy through the engine
// equal to lesson 11's tokens.
import { beforeAll, describe, expect, it } from 'vitest';

import { Tensor, cudaAvailable, ops } from '@aios/engine-core';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';
import { recipe as graphs } from '@aios/lesson-11-cuda-graphs';

import { randomArray } from '../../../engine-core/test/helpers.ts';
import { recipe as sampling } from '../src/recipe.ts';
import { FILTER_CASES, ROW16, chiSquare, drawCounts, filteredProbs, spec } from './reference.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lesson 12 sampling.gpu.test: skipped: no usable CUDA device on this machine');

const V = 151_936;
const ROWS = 256;

/** Row r's parameters: every path, mixed in one batch (greedy, plain, each filter, combinations, penalties, log-probs). */
function mixedRow(r: number): SampleRowSpec {
  const kinds: Partial<SampleRowSpec>[] = [
    { temperature: 0 },
    { temperature: 0.6 },
    { temperature: 0.8, topK: 50 },
    { temperature: 1, topP: 0.9 },
    { temperature: 0.7, minP: 0.1 },
    { temperature: 0.6, topK: 200, topP: 0.8, minP: 0.02 },
    { temperature: 0.9, repetitionPenalty: 1.3, presencePenalty: 0.5, frequencyPenalty: 0.2 },
    { temperature: 0, repetitionPenalty: 1.5, logprobs: 20 },
    { temperature: 0.6, topK: 1 },
    { temperature: 1.2, topP: 0.5, logprobs: 5 },
    { temperature: 0.6, logprobs: 0 },
  ];
  return spec({ ...kinds[r % kinds.length]!, seed: 1000 + r, position: 17 * r });
}

function run(device: 'cpu' | 'cuda:0', x: Float32Array, rows: SampleRowSpec[], penalties: Int32Array) {
  const logits = Tensor.fromArray(x, [rows.length, V], { device });
  const ws = Tensor.empty([ops.sampleWorkspaceFloats(rows.length, V, penalties.length / 4)], { device });
  const out = ops.sampleTokens(logits, rows, penalties, { workspace: ws });
  try {
    const w = ws.toArray() as Float32Array;
    return {
      ...ops.readSampleOut(out.toArray() as Int32Array, rows.length),
      thresholds: w.slice(0, rows.length),
      maxima: w.slice(rows.length, 2 * rows.length),
      after: logits.toArray() as Float32Array,
    };
  } finally {
    for (const t of [logits, ws, out]) t.dispose();
  }
}

describe.skipIf(!hasGpu)('lesson 12 sampling kernels on CUDA against the CPU reference', () => {
  const rows = Array.from({ length: ROWS }, (_, r) => mixedRow(r));
  let x: Float32Array;
  let penalties: Int32Array;
  let cpu: ReturnType<typeof run>;
  let gpu: ReturnType<typeof run>;
  beforeAll(() => {
    x = randomArray(ROWS * V, 12, 8);
    for (let r = 0; r < ROWS; r += 5) x[r * V + 1000] = x[r * V + 90_000] = 9; // ties at the top of some rows
    // Penalized rows: a few hundred distinct earlier tokens each, some in the prompt, some in the output.
    const words: number[] = [];
    rows.forEach((s, r) => {
      if (s.repetitionPenalty === 1 && s.presencePenalty === 0 && s.frequencyPenalty === 0) return;
      for (let j = 0; j < 300; j++) words.push(r, (r * 7919 + j * 503) % V, j % 4, j % 3 === 0 ? 1 : 0);
    });
    penalties = Int32Array.from(words);
    cpu = run('cpu', x, rows, penalties);
    gpu = run('cuda:0', x, rows, penalties);
  }, 300_000);

  it('the logits are left as they were (penalties restored)', () => {
    expect(gpu.after.every((v, i) => Object.is(v, x[i]))).toBe(true);
  });

  it('thresholds and maxima (radix select): top-k exact; top-p equal but for rounding at the boundary', () => {
    let topPDiffer = 0;
    rows.forEach((s, r) => {
      const filtered = s.temperature > 0 && (s.topK > 0 || s.topP < 1 || s.minP > 0);
      if (!filtered) return;
      expect(gpu.maxima[r], `row ${r} max`).toBe(cpu.maxima[r]);
      if (s.topP < 1) topPDiffer += gpu.thresholds[r] === cpu.thresholds[r] ? 0 : 1;
      else expect(gpu.thresholds[r], `row ${r} threshold`).toBe(cpu.thresholds[r]);
    });
    console.log(`top-p thresholds that differ between CUDA (float sums) and the CPU (double sums): ${topPDiffer}`);
    expect(topPDiffer).toBeLessThanOrEqual(2);
  });

  it('tokens: greedy rows exact, sampled rows equal but for near-ties of the scores (__logf vs logf)', () => {
    let differ = 0;
    rows.forEach((s, r) => {
      if (s.temperature === 0) expect(gpu.tokens[r], `greedy row ${r}`).toBe(cpu.tokens[r]);
      else differ += gpu.tokens[r] === cpu.tokens[r] ? 0 : 1;
    });
    console.log(`sampled rows whose token differs between CUDA and the CPU: ${differ} of ${rows.filter((s) => s.temperature > 0).length}`);
    expect(differ).toBeLessThanOrEqual(2);
  });

  it('log-probs: the chosen and the top-n of the raw log_softmax', () => {
    rows.forEach((s, r) => {
      if (s.logprobs < 0) return;
      if (gpu.tokens[r] === cpu.tokens[r]) expect(Math.abs(gpu.chosenLogprobs[r]! - cpu.chosenLogprobs[r]!), `row ${r}`).toBeLessThan(1e-4);
      const ids = (o: typeof gpu) => Array.from(o.topIds.subarray(r * 20, r * 20 + s.logprobs));
      expect(ids(gpu), `row ${r} top ids`).toEqual(ids(cpu));
      for (let j = 0; j < s.logprobs; j++) expect(Math.abs(gpu.topLogprobs[r * 20 + j]! - cpu.topLogprobs[r * 20 + j]!)).toBeLessThan(1e-4);
    });
  });
});

describe.skipIf(!hasGpu)('lesson 12 on CUDA: distributions and seeds', () => {
  for (const [name, s, penalties] of FILTER_CASES)
    it(`chi-square on the GPU: ${name}`, () => {
      const c = chiSquare(drawCounts(ROW16, s, 20_000, 'cuda:0', penalties), filteredProbs(ROW16, s, penalties));
      expect(c.impossible).toBe(0);
      expect(c.stat).toBeLessThan(c.critical);
    });

  it('the chi-square rejects a wrong distribution on the GPU too (temperature 0.6 against 0.66)', () => {
    const c = chiSquare(drawCounts(ROW16, spec({ temperature: 0.6 }), 20_000, 'cuda:0'), filteredProbs(ROW16, spec({ temperature: 0.66 })));
    expect(c.stat).toBeGreaterThan(c.critical);
  });

  it('a seeded row: the same tokens alone and among 255 other rows, and as on the CPU', () => {
    const row = randomArray(V, 77, 6);
    const mine = spec({ temperature: 0.6, topK: 100, topP: 0.9, seed: 31337 });
    for (const position of [1, 50, 999]) {
      const alone = run('cuda:0', row, [{ ...mine, position }], new Int32Array(0)).tokens[0];
      const at = position % ROWS;
      const batch = randomArray(ROWS * V, position, 6);
      batch.set(row, at * V);
      const all = Array.from({ length: ROWS }, (_, r) => (r === at ? { ...mine, position } : mixedRow(r)));
      expect(run('cuda:0', batch, all, new Int32Array(0)).tokens[at]).toBe(alone);
      expect(run('cpu', row, [{ ...mine, position }], new Int32Array(0)).tokens[0]).toBe(alone);
    }
  });
});

describe.skipIf(!hasGpu)('lesson 12 on CUDA through the engine (bf16, Qwen3-0.6B shape)', () => {
  let model = '';
  beforeAll(() => {
    model = ensureDefaultModel('gpu', () => {});
  }, 600_000);
  const generate = (recipe: Recipe, params: SamplingParams[]) => {
    const llm = LLM.create({ recipe, model, device: 'cuda:0', engine: { maxNumBatchedTokens: 4096, maxNumSeqs: 64 }, log: () => {} });
    try {
      return llm.generate(params.map((_, i) => Array.from({ length: 20 + 13 * i }, (_, t) => (i * 7919 + t * 977 + 13) % 150_000)), params, { decodeText: false });
    } finally {
      llm.dispose();
    }
  };

  it("greedy: lesson 11's tokens", () => {
    const params = Array.from({ length: 8 }, () => new SamplingParams({ temperature: 0, maxTokens: 32, ignoreEos: true }));
    expect(generate(sampling, params).map((o) => o.tokenIds)).toEqual(generate(graphs, params).map((o) => o.tokenIds));
  }, 300_000);

  it('log-probs and every filter run through the engine', () => {
    const params = [new SamplingParams({ temperature: 0.6, topK: 20, topP: 0.9, minP: 0.05, repetitionPenalty: 1.2, presencePenalty: 0.3, frequencyPenalty: 0.3, logprobs: 5, maxTokens: 16, ignoreEos: true, seed: 3 })];
    const [out] = generate(sampling, params);
    expect(out!.tokenIds).toHaveLength(16);
    expect(out!.logprobs).toHaveLength(16);
    out!.logprobs!.forEach((lp, i) => expect(lp.token).toBe(out!.tokenIds[i]));
  }, 300_000);
});
