// Drives recipes down one forced token path (a sampler that records each logits
// row and returns a fixed next token), so the logits of different lessons can be
// compared step by step on the GPU, where bf16 rounding makes free-running
// greedy paths diverge at near ties.
import { expect } from 'vitest';

import type { Device, Tensor } from '../src/index.ts';
import type { DType } from '../src/dtype.ts';
import { LLM } from '../src/engine/llm.ts';
import { SamplingParams } from '../src/engine/sampling-params.ts';
import type { Sequence } from '../src/engine/sequence.ts';
import type { EngineOptions, Recipe, SampleResult } from '../src/engine/types.ts';

export type Rows = Map<string, Float32Array>;

/**
 * The prompts, by their lengths (made up here) or given (a test that needs shared prefixes, say);
 * either way their lengths must differ: a sequence is known by its length.
 */
export type ForcedPath = { promptLengths: number[]; steps: number } | { prompts: number[][]; steps: number };

export function forcedPrompts(p: ForcedPath): { prompts: number[][]; forced: number[][] } {
  const prompts = 'prompts' in p ? p.prompts : p.promptLengths.map((n, i) => Array.from({ length: n }, (_, t) => (i * 7919 + t * 977 + 13) % 150_000));
  expect(new Set(prompts.map((q) => q.length)).size, 'forced path: prompt lengths must differ').toBe(prompts.length);
  return {
    prompts,
    forced: prompts.map((_, i) => Array.from({ length: p.steps }, (_, j) => (i * 104_729 + j * 8_191 + 5) % 150_000)),
  };
}

/** Runs a recipe down the path; returns every logits row, keyed "prompt:step", and what the parts said about themselves. */
export function runForced(recipe: Recipe, path: ForcedPath, opts: { model?: string; device: Device; dtype?: DType; engine?: Partial<EngineOptions> }): { rows: Rows; described: string[] } {
  const { prompts, forced } = forcedPrompts(path);
  const lengths = prompts.map((q) => q.length);
  const rows: Rows = new Map();
  const recording: Recipe = {
    ...recipe,
    build(ctx) {
      const parts = recipe.build(ctx);
      return {
        ...parts,
        sampler: {
          sample(logits: Tensor, seqs: readonly Sequence[]): SampleResult {
            const all = logits.toArray() as Float32Array;
            const V = logits.shape[1]!;
            const tokens = seqs.map((s, i) => {
              const p = lengths.indexOf(s.promptIds.length);
              rows.set(`${p}:${s.outputIds.length}`, all.slice(i * V, (i + 1) * V));
              return forced[p]![s.outputIds.length]!;
            });
            return { tokens };
          },
        },
      };
    },
  };
  const llm = LLM.create({ recipe: recording, ...(opts.model ? { model: opts.model } : {}), device: opts.device, dtype: opts.dtype ?? 'bf16', ...(opts.engine ? { engine: opts.engine } : {}), log: () => {} });
  try {
    const outs = llm.generate(prompts, new SamplingParams({ temperature: 0, maxTokens: path.steps, ignoreEos: true }), { decodeText: false });
    outs.forEach((o, p) => expect(o.tokenIds).toEqual(forced[p]));
    return { rows, described: llm.parts.describe?.() ?? [] };
  } finally {
    llm.dispose();
  }
}

export function compareRows(a: Rows, b: Rows): { relError: number; maxAbs: number; argmaxAgreement: number } {
  let num = 0, den = 0, same = 0, maxAbs = 0;
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [key, x] of a) {
    const y = b.get(key)!;
    let ax = 0, ay = 0;
    for (let v = 0; v < x.length; v++) {
      const d = x[v]! - y[v]!;
      num += d * d;
      den += y[v]! * y[v]!;
      maxAbs = Math.max(maxAbs, Math.abs(d));
      if (x[v]! > x[ax]!) ax = v;
      if (y[v]! > y[ay]!) ay = v;
    }
    if (ax === ay) same++;
  }
  return { relError: Math.sqrt(num / den), maxAbs, argmaxAgreement: same / a.size };
}

/** The bf16 tolerance lessons 03 on are held to between two paths' logits: relative error and argmax agreement. */
export const BF16_TOLERANCE = { relError: 2e-2, argmaxAgreement: 0.9 } as const;

/** Compares `a` with `b`, prints "`label`: rel. error ..., max abs ..., argmax agreement ..." and asserts BF16_TOLERANCE. */
export function expectBf16Agreement(label: string, a: Rows, b: Rows): ReturnType<typeof compareRows> {
  const c = compareRows(a, b);
  console.log(`${label}: rel. error ${c.relError.toExponential(2)}, max abs ${c.maxAbs.toExponential(2)}, argmax agreement ${c.argmaxAgreement.toFixed(3)}`);
  expect(c.relError).toBeLessThan(BF16_TOLERANCE.relError);
  expect(c.argmaxAgreement).toBeGreaterThanOrEqual(BF16_TOLERANCE.argmaxAgreement);
  return c;
}
