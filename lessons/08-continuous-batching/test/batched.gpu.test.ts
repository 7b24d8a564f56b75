// Lessons 07 and 08 on CUDA in bf16 compute what lesson 06 computes. Every
// lesson is driven down the same forced token path (a sampler that records each
// logits row and returns a fixed next token), so the logits can be compared
// step by step. The batched lessons run other GEMM shapes (all sequences at
// once) and another attention kernel, so bf16 rounding differs: they must agree
// within the bf16 tolerance used for lessons 03-06 (2e-2, argmax agreement 0.9).
import { beforeAll, describe, expect, it } from 'vitest';

import { cudaAvailable } from '@aios/engine-core';
import { LLM } from '@aios/engine-core/engine/llm.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import type { Tensor } from '@aios/engine-core';
import { pagedRecipe } from '@aios/lesson-06-paged-kv-cache';
import { recipe as batching } from '@aios/lesson-07-batching';

import { recipe as continuous } from '../src/recipe.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lessons 07-08 batched.gpu.test: skipped: no usable CUDA device on this machine');

// Distinct prompt lengths (a sequence is known by its length), crossing 16-token blocks; one long enough for a multi-block context.
const PROMPT_LENGTHS = [11, 40, 70, 1, 300];
const STEPS = 12;
const prompts = PROMPT_LENGTHS.map((n, p) => Array.from({ length: n }, (_, i) => (p * 7919 + i * 977 + 13) % 150_000));
const forced = PROMPT_LENGTHS.map((_, p) => Array.from({ length: STEPS }, (_, j) => (p * 104_729 + j * 8_191 + 5) % 150_000));

type Rows = Map<string, Float32Array>;

function recording(base: Recipe, rows: Rows): Recipe {
  return {
    ...base,
    build(ctx) {
      const parts = base.build(ctx);
      return {
        ...parts,
        sampler: {
          sample(logits: Tensor, seqs: readonly Sequence[]): number[] {
            const all = logits.toArray() as Float32Array;
            const V = logits.shape[1]!;
            return seqs.map((s, i) => {
              const p = PROMPT_LENGTHS.indexOf(s.promptIds.length);
              rows.set(`${p}:${s.outputIds.length}`, all.slice(i * V, (i + 1) * V));
              return forced[p]![s.outputIds.length]!;
            });
          },
        },
      };
    },
  };
}

const described: string[] = [];

function run(recipe: Recipe): Rows {
  const rows: Rows = new Map();
  const llm = LLM.create({ recipe: recording(recipe, rows), model: ensureDefaultModel('cpu', () => {}), device: 'cuda:0', dtype: 'bf16', engine: { maxNumBatchedTokens: 2048 }, log: () => {} });
  try {
    const outs = llm.generate(prompts, new SamplingParams({ temperature: 0, maxTokens: STEPS, ignoreEos: true }), { decodeText: false });
    outs.forEach((o, p) => expect(o.tokenIds).toEqual(forced[p]));
    described.push(...(llm.parts.describe?.() ?? []));
  } finally {
    llm.dispose();
  }
  return rows;
}

function compare(a: Rows, b: Rows): { relError: number; argmaxAgreement: number } {
  let num = 0, den = 0, same = 0;
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [key, x] of a) {
    const y = b.get(key)!;
    let ax = 0, ay = 0;
    for (let v = 0; v < x.length; v++) {
      const d = x[v]! - y[v]!;
      num += d * d;
      den += y[v]! * y[v]!;
      if (x[v]! > x[ax]!) ax = v;
      if (y[v]! > y[ay]!) ay = v;
    }
    if (ax === ay) same++;
  }
  return { relError: Math.sqrt(num / den), argmaxAgreement: same / a.size };
}

describe.skipIf(!hasGpu)('lessons 07-08 on CUDA (bf16) against lesson 06', () => {
  let rows: { paged: Rows; batching: Rows; continuous: Rows };
  beforeAll(() => {
    const paged = pagedRecipe({ blockSize: 16, gpuMemoryUtilization: 0.9, warmupTokens: 256, cpuPoolBytes: 8 * 2 ** 20 });
    rows = { paged: run(paged), batching: run(batching), continuous: run(continuous) };
  }, 300_000);

  it('produce a logits row for every step of every prompt, from a pool sized by a measured warm-up step', () => {
    for (const r of Object.values(rows)) expect(r.size).toBe(PROMPT_LENGTHS.length * STEPS);
    expect(described.join('\n')).toMatch(/KV pool: \d+ blocks .* of activations measured in a 2048-token warm-up step/);
  });

  for (const name of ['batching', 'continuous'] as const)
    it(`lesson ${name === 'batching' ? '07' : '08'} agrees with lesson 06 within bf16 tolerance`, () => {
      const c = compare(rows[name], rows.paged);
      console.log(`lesson ${name} vs 06 on CUDA bf16: rel. error ${c.relError.toExponential(2)}, argmax agreement ${c.argmaxAgreement.toFixed(3)}`);
      expect(c.relError).toBeLessThan(2e-2);
      expect(c.argmaxAgreement).toBeGreaterThanOrEqual(0.9);
    });

  it('07 and 08 run the same kernels on the same schedule here (everything fits one batch): identical logits', () => {
    const c = compare(rows.continuous, rows.batching);
    expect(c.relError).toBe(0);
  });
});
