// ops.sampleTokens on the CPU (the reference the CUDA kernels are checked against):
// the drawn distribution is the filtered softmax, for each filter and combination
// (chi-square, with a deliberately wrong distribution rejected to show the test's
// power); a seeded row draws the same tokens alone and among 63 others; greedy is
// ops.argmax; penalties follow the formula; log-probs are the raw log_softmax and
// its n largest; bad input is an error that names it.
import { describe, expect, it } from 'vitest';

import { Tensor, ops } from '@aios/engine-core';
import { native } from '@aios/engine-core/backend.ts';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';

import { randomArray } from '../../../engine-core/test/helpers.ts';
import { FILTER_CASES, ROW16, chiSquare, drawCounts, filteredProbs, logSoftmax, penalize, spec, topIndices } from './reference.ts';

const DRAWS = 20_000;

function sampleOnce(logits: Float32Array, rows: SampleRowSpec[], penalties?: Int32Array) {
  const n = logits.length / rows.length;
  const t = Tensor.fromArray(logits, [rows.length, n]);
  const ws = Tensor.empty([ops.sampleWorkspaceFloats(rows.length, n, (penalties?.length ?? 0) / 4)]);
  const out = ops.sampleTokens(t, rows, penalties, { workspace: ws });
  try {
    const words = out.toArray() as Int32Array;
    const w = ws.toArray() as Float32Array;
    return { ...ops.readSampleOut(words, rows.length), thresholds: w.slice(0, rows.length), maxima: w.slice(rows.length, 2 * rows.length), after: t.toArray() as Float32Array };
  } finally {
    for (const x of [t, ws, out]) x.dispose();
  }
}

describe('log-prob alternatives of a row with fewer usable logits than asked', () => {
  it('marks the missing ones with id -1 and -Infinity instead of leaving stale memory', () => {
    const V = 8;
    const row = new Float32Array(V).fill(Number.NaN);
    row[3] = 1;
    row[6] = 2;
    // Run twice over the same output-sized buffers so stale values from a first call would show.
    for (let k = 0; k < 2; k++) {
      const r = sampleOnce(row, [spec({ temperature: 0, logprobs: 5 })]);
      expect(Array.from(r.topIds.slice(0, 5))).toEqual([6, 3, -1, -1, -1]);
      expect(Array.from(r.topLogprobs.slice(2, 5))).toEqual([-Infinity, -Infinity, -Infinity]);
    }
  });
});

describe('Philox4x32-10', () => {
  it("gives Random123's published known answers", () => {
    expect(native.philox4x32(0, 0, 0, 0, 0, 0)).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    const ones = 0xffffffff;
    expect(native.philox4x32(ones, ones, ones, ones, ones, ones)).toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(native.philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0)).toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });
});

describe('sampleTokens on the CPU: distributions (chi-square, 20,000 draws of a 16-entry row)', () => {
  for (const [name, s, penalties] of FILTER_CASES)
    it(name, () => {
      const counts = drawCounts(ROW16, s, DRAWS, 'cpu', penalties);
      const probs = filteredProbs(ROW16, s, penalties);
      const c = chiSquare(counts, probs);
      expect(c.impossible).toBe(0); // nothing drawn outside what the filters keep
      expect(c.stat).toBeLessThan(c.critical);
    });

  it('has the power to reject a wrong distribution (temperature 0.6 against 0.66, top-p 0.7 against no top-p, penalties against none)', () => {
    const at06 = drawCounts(ROW16, spec({ temperature: 0.6 }), DRAWS);
    const wrongT = chiSquare(at06, filteredProbs(ROW16, spec({ temperature: 0.66 })));
    expect(wrongT.stat).toBeGreaterThan(wrongT.critical);
    const topP = drawCounts(ROW16, spec({ topP: 0.7 }), DRAWS);
    const noFilter = chiSquare(topP, filteredProbs(ROW16, spec({})));
    expect(noFilter.stat).toBeGreaterThan(noFilter.critical);
    const [, penalized, entries] = FILTER_CASES.find(([name]) => name.startsWith('penalties ('))!;
    const unpenalized = chiSquare(drawCounts(ROW16, penalized, DRAWS, 'cpu', entries), filteredProbs(ROW16, penalized, []));
    expect(unpenalized.stat).toBeGreaterThan(unpenalized.critical);
  });

  it('keeps exactly the filtered set: thresholds are entries of the row, ties kept', () => {
    const rows = [spec({ topK: 5 }), spec({ topP: 0.7 }), spec({ minP: 0.15, temperature: 0.7 }), spec({}), spec({ temperature: 0, topK: 3 })];
    const r = sampleOnce(Float32Array.from({ length: rows.length * 16 }, (_, i) => ROW16[i % 16]!), rows);
    expect(r.thresholds[0]).toBe(Math.fround(1.5)); // the 5th largest, which ties the 6th
    const kept = filteredProbs(ROW16, rows[1]!).map((p, i) => (p > 0 ? ROW16[i]! : Infinity));
    expect(r.thresholds[1]).toBe(Math.min(...kept));
    expect(r.thresholds[2]).toBe(-Infinity); // min-p is a condition against the max, not a threshold
    expect(r.maxima[2]).toBe(Math.fround(2.6));
    expect(r.thresholds[3]).toBe(-Infinity);
    expect(r.thresholds[4]).toBe(-Infinity); // greedy ignores the filters
    expect(r.tokens[4]).toBe(7);
  });
});

describe('sampleTokens on the CPU: seeds, greedy, penalties, log-probs', () => {
  const V = 1000;

  it('a seeded row draws the same tokens alone and placed among 63 other rows', () => {
    const row = randomArray(V, 5, 3);
    const mine = spec({ temperature: 0.8, topK: 50, topP: 0.95, seed: 12345 });
    for (let position = 100; position < 140; position++) {
      const alone = sampleOnce(row, [{ ...mine, position }]).tokens[0];
      const at = (position * 7) % 64;
      const batch = randomArray(64 * V, position, 3);
      batch.set(row, at * V);
      const others = Array.from({ length: 64 }, (_, i) =>
        i === at ? { ...mine, position } : spec({ temperature: (i % 3) * 0.5, topP: i % 2 ? 0.9 : 1, seed: i, position: i, repetitionPenalty: 1.2 }),
      );
      const pen = new Int32Array([0, 1, 2, 0, 63, 5, 0, 1].map((v, j) => (j % 4 === 0 && v === 0 && at === 0 ? 1 : v)));
      expect(sampleOnce(batch, others, pen).tokens[at]).toBe(alone);
    }
  });

  it('seeds and positions change the draw; the same (seed, position) repeats it', () => {
    const row = new Float32Array(V); // uniform: every entry equally likely
    const draw = (seed: number, position: number) => sampleOnce(row, [spec({ seed, position })]).tokens[0]!;
    const bySeed = new Set(Array.from({ length: 20 }, (_, s) => draw(s, 0)));
    const byPosition = new Set(Array.from({ length: 20 }, (_, p) => draw(9, p)));
    expect(bySeed.size).toBeGreaterThan(15);
    expect(byPosition.size).toBeGreaterThan(15);
    expect(draw(2 ** 40 + 3, 17)).toBe(draw(2 ** 40 + 3, 17));
    expect(draw(3, 17)).not.toBe(draw(2 ** 40 + 3, 17)); // the seed's high word counts
  });

  it("greedy rows are ops.argmax's tokens (lowest index among equal maxima)", () => {
    const rows = 32;
    const x = randomArray(rows * V, 3);
    for (let r = 0; r < rows; r += 3) x[r * V + 10 + r] = x[r * V + 500] = 9; // ties
    const t = Tensor.fromArray(x, [rows, V]);
    const want = Array.from(ops.argmax(t).toArray() as Int32Array);
    t.dispose();
    expect(Array.from(sampleOnce(x, Array.from({ length: rows }, () => spec({ temperature: 0, topK: 4, seed: 3 }))).tokens)).toEqual(want);
  });

  it('penalties follow the formula: CTRL repetition (positive / p, negative * p), then presence and frequency', () => {
    // Row r: entry 0 holds a value, the rest -100; entry 0 is penalized; the row's max is the penalized value.
    const cases: [number, SampleRowSpec, number, number][] = [];
    for (const v of [2.5, -1.25, 0, 0.7])
      for (const [count, inPrompt] of [[0, 1], [1, 0], [3, 1], [0, 0]] as const)
        for (const s of [spec({ repetitionPenalty: 1.3 }), spec({ repetitionPenalty: 0.8, presencePenalty: 0.5 }), spec({ frequencyPenalty: -0.7, presencePenalty: 1.1, repetitionPenalty: 2 })])
          cases.push([v, { ...s, minP: 1e-6 }, count, inPrompt]);
    const x = new Float32Array(cases.length * 4).fill(-100);
    cases.forEach(([v], r) => (x[4 * r] = v));
    const pen = new Int32Array(cases.flatMap(([, , count, inPrompt], r) => [r, 0, count, inPrompt]));
    const r = sampleOnce(x, cases.map(([, s]) => s), pen);
    cases.forEach(([v, s, count, inPrompt], i) => expect(r.maxima[i], `case ${i}`).toBe(penalize(v, s, count, inPrompt)));
    expect(Array.from(r.after)).toEqual(Array.from(x)); // the logits are left as they were
    // And they decide a greedy row: 3.0 (in the prompt) / 1.5 = 2.0 < 2.5, so entry 1 wins.
    const g = sampleOnce(Float32Array.from([3, 2.5, 1]), [spec({ temperature: 0, repetitionPenalty: 1.5 })], new Int32Array([0, 0, 0, 1]));
    expect(g.tokens[0]).toBe(1);
  });

  it('log-probs: the chosen token and the n largest under the raw log_softmax (before penalties and temperature)', () => {
    const rows = 6;
    const x = randomArray(rows * V, 8, 4);
    x[2 * V + 3] = x[2 * V + 700] = x[2 * V + 701] = 11; // ties among the largest
    const specs = [0, 1, 5, 20, 3, 20].map((n, i) => spec({ temperature: i % 2 ? 0.5 : 0, repetitionPenalty: 1.4, topK: 7, logprobs: n, seed: i }));
    const r = sampleOnce(x, specs, new Int32Array([1, 4, 2, 1, 3, 9, 0, 1]));
    specs.forEach((s, i) => {
      const row = x.subarray(i * V, (i + 1) * V);
      const ref = logSoftmax(row);
      expect(r.chosenLogprobs[i]).toBeCloseTo(ref[r.tokens[i]!]!, 5);
      const ids = Array.from(r.topIds.subarray(i * 20, i * 20 + s.logprobs));
      expect(ids).toEqual(topIndices(row, s.logprobs));
      ids.forEach((id, j) => expect(r.topLogprobs[i * 20 + j]).toBeCloseTo(ref[id]!, 5));
    });
    expect(Array.from(r.topIds.subarray(2 * 20, 2 * 20 + 3))).toEqual([3, 700, 701]);
  });

  it('names what is wrong', () => {
    const t = Tensor.fromArray(new Float32Array(8), [2, 4]);
    const ok = [spec({}), spec({})];
    expect(() => ops.sampleTokens(t, [spec({})])).toThrow(/1 row specs for 2 logits rows/);
    expect(() => ops.sampleTokens(t, [spec({}), spec({ topP: 0 })])).toThrow(/row 1: topP must be in \(0, 1\]/);
    expect(() => ops.sampleTokens(t, [spec({ logprobs: 21 }), spec({})])).toThrow(/row 0: logprobs must be an integer in \[-1, 20\]/);
    expect(() => ops.sampleTokens(t, [spec({ seed: -1 }), spec({})])).toThrow(/seed must be an integer/);
    expect(() => ops.sampleTokens(t, [spec({}), spec({ logprobs: 5 })])).toThrow(/row 1: 5 log-prob alternatives asked of a vocabulary of 4/);
    expect(() => ops.sampleTokens(t, ok, new Int32Array([2, 0, 0, 1]))).toThrow(/penalty entry 0 \(row 2, token 0.*outside 2 rows x 4 tokens/);
    expect(() => ops.sampleTokens(t, ok, new Int32Array([0, 4, 0, 1]))).toThrow(/penalty entry 0/);
    expect(() => ops.sampleTokens(t, ok, new Int32Array([0, 1, 0]))).toThrow(/4 words per entry/);
    expect(() => ops.sampleTokens(t, ok, new Int32Array([0, 1, 0, 1, 0, 1, 2, 0]))).toThrow(/penalty entry 1 repeats \(row 0, token 1\)/);
    // Rows out of order (the checked-with-a-set path), and the same token on two rows (allowed).
    expect(() => ops.sampleTokens(t, ok, new Int32Array([1, 2, 0, 1, 0, 3, 0, 1, 1, 2, 1, 0]))).toThrow(/penalty entry 2 repeats \(row 1, token 2\)/);
    ops.sampleTokens(t, ok, new Int32Array([0, 2, 0, 1, 1, 2, 1, 0])).dispose();
    ops.sampleTokens(t, ok, new Int32Array([1, 2, 0, 1, 0, 2, 1, 0])).dispose();
    expect(() => ops.sampleTokens(t.view(8), ok)).toThrow(/2-d f32/);
    t.dispose();
  });
});
