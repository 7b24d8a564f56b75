// The test oracle: what sampleTokens promises, written again from the definitions
// in float64 (penalties -> temperature -> top-k -> top-p -> min-p, then a draw from
// the softmax renormalized over what is kept), a chi-square check, and random rows.
import { Tensor, ops } from '@aios/engine-core';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';

export const BASE: SampleRowSpec = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, seed: 1, position: 0, logprobs: -1 };

export function spec(over: Partial<SampleRowSpec>): SampleRowSpec {
  return { ...BASE, ...over };
}

/** [token, count in the output, 1 if in the prompt] */
export type Penalty = [number, number, number];

/** The penalized logit by the formula (CTRL's repetition penalty, then OpenAI's presence and frequency), in float32 steps. */
export function penalize(x: number, s: SampleRowSpec, count: number, inPrompt: number): number {
  const f = Math.fround;
  let v = f(x);
  if (s.repetitionPenalty !== 1 && (count > 0 || inPrompt)) v = v > 0 ? f(v / f(s.repetitionPenalty)) : f(v * f(s.repetitionPenalty));
  return f(v - f(f(f(s.presencePenalty) * (count > 0 ? 1 : 0)) + f(f(s.frequencyPenalty) * count)));
}

/** The distribution a row is drawn from: one probability per vocabulary entry (0 where filtered out). */
export function filteredProbs(row: ArrayLike<number>, s: SampleRowSpec, penalties: Penalty[] = []): number[] {
  const x = Array.from(row, Number);
  for (const [t, c, p] of penalties) x[t] = penalize(x[t]!, s, c, p);
  const n = x.length;
  if (s.temperature === 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (x[i]! > x[best]!) best = i;
    return x.map((_, i) => (i === best ? 1 : 0));
  }
  const T = s.temperature;
  const mx = Math.max(...x);
  const sorted = [...x].sort((a, b) => b - a);
  let threshold = -Infinity;
  if (s.topK > 0) threshold = sorted[Math.min(s.topK, n) - 1]!;
  if (s.topP < 1) {
    const kept = sorted.filter((v) => v >= threshold);
    const w = kept.map((v) => Math.exp((v - mx) / T));
    const total = w.reduce((a, b) => a + b, 0);
    let cum = 0;
    for (let j = 0; j < kept.length; j++) {
      cum += w[j]!;
      if (cum >= s.topP * total) {
        threshold = Math.max(threshold, kept[j]!);
        break;
      }
    }
  }
  const logMinP = s.minP > 0 ? Math.log(s.minP) : -Infinity;
  const w = x.map((v) => (v >= threshold && (v - mx) / T >= logMinP ? Math.exp((v - mx) / T) : 0));
  const z = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / z);
}

/**
 * Pearson's chi-square statistic of `counts` against `probs` over the entries with
 * probability > 0, its degrees of freedom, and the critical value at significance
 * 1e-4 (Wilson-Hilferty's approximation of the quantile). Draws that land where the
 * probability is 0 are counted apart (`impossible`): there must be none.
 */
export function chiSquare(counts: number[], probs: number[]): { stat: number; df: number; critical: number; impossible: number } {
  const total = counts.reduce((a, b) => a + b, 0);
  let stat = 0, df = -1, impossible = 0;
  // Entries expected fewer than 5 times are pooled into one cell (the test's usual rule).
  let pooledCount = 0, pooledExpected = 0;
  probs.forEach((p, i) => {
    if (p === 0) {
      impossible += counts[i]!;
      return;
    }
    const e = total * p;
    if (e < 5) {
      pooledCount += counts[i]!;
      pooledExpected += e;
      return;
    }
    stat += (counts[i]! - e) ** 2 / e;
    df++;
  });
  if (pooledExpected > 0) {
    stat += (pooledCount - pooledExpected) ** 2 / pooledExpected;
    df++;
  }
  const z = 3.719; // the standard normal's 1 - 1e-4 quantile
  const k = Math.max(df, 1);
  const critical = k * (1 - 2 / (9 * k) + z * Math.sqrt(2 / (9 * k))) ** 3;
  return { stat, df, critical, impossible };
}

/** Token counts of `draws` draws of one row: the row repeated, each copy at its own position. */
export function drawCounts(row: ArrayLike<number>, s: SampleRowSpec, draws: number, device: 'cpu' | 'cuda:0' = 'cpu', penalties: Penalty[] = []): number[] {
  const n = row.length;
  const data = new Float32Array(draws * n);
  for (let r = 0; r < draws; r++) data.set(row, r * n);
  const entries = new Int32Array(4 * draws * penalties.length);
  let at = 0;
  for (let r = 0; r < draws; r++) for (const [t, c, p] of penalties) entries.set([r, t, c, p], 4 * at++);
  const logits = Tensor.fromArray(data, [draws, n], { device });
  const out = ops.sampleTokens(logits, Array.from({ length: draws }, (_, position) => ({ ...s, position })), entries);
  try {
    const tokens = out.narrow(0, 0, draws).toArray() as Int32Array;
    const counts = new Array<number>(n).fill(0);
    for (const t of tokens) counts[t]!++;
    return counts;
  } finally {
    out.dispose();
    logits.dispose();
  }
}

/** log_softmax of a row in float64. */
export function logSoftmax(row: ArrayLike<number>): number[] {
  const x = Array.from(row, Number);
  const mx = Math.max(...x);
  const lse = mx + Math.log(x.reduce((a, v) => a + Math.exp(v - mx), 0));
  return x.map((v) => v - lse);
}

/** The n largest entries' indices, ties to the lower index. */
export function topIndices(row: ArrayLike<number>, n: number): number[] {
  return Array.from(row.length ? Array.from({ length: row.length }, (_, i) => i) : [])
    .sort((a, b) => row[b]! - row[a]! || a - b)
    .slice(0, n);
}

/** The test's logits row of 16 entries: a spread of values with a tie (entries 3 and 9). */
export const ROW16 = Float32Array.from([1.2, -0.5, 2.0, 1.5, 0.3, -2.0, 0.9, 2.6, -1.1, 1.5, 0.0, 1.9, -0.3, 0.6, 2.2, -1.6]);

/** The filter settings the distribution tests cover. */
export const FILTER_CASES: [string, SampleRowSpec, Penalty[]][] = [
  ['temperature 1', spec({ temperature: 1 }), []],
  ['temperature 0.6', spec({ temperature: 0.6 }), []],
  ['top-k 5 (its 5th value ties the 6th: 6 kept)', spec({ temperature: 0.8, topK: 5 }), []],
  ['top-p 0.7', spec({ temperature: 1, topP: 0.7 }), []],
  ['min-p 0.15', spec({ temperature: 0.7, minP: 0.15 }), []],
  ['top-k 10, top-p 0.9, min-p 0.05 at 0.6', spec({ temperature: 0.6, topK: 10, topP: 0.9, minP: 0.05 }), []],
  ['penalties (repetition 1.3, presence 0.4, frequency 0.3)', spec({ temperature: 1, repetitionPenalty: 1.3, presencePenalty: 0.4, frequencyPenalty: 0.3 }), [[7, 2, 1], [14, 0, 1], [2, 1, 0], [5, 3, 0], [10, 0, 1]]],
  ['penalties with top-k 5 and top-p 0.8', spec({ temperature: 0.9, topK: 5, topP: 0.8, repetitionPenalty: 1.5, frequencyPenalty: 0.5 }), [[7, 1, 1], [14, 0, 1]]],
];
