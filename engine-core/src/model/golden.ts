// Compares our Qwen3 forward with golden logits from Hugging Face transformers
// (engine-core/scripts/golden_logits.py writes them).
import { readFileSync } from 'node:fs';

import * as ops from '../ops.ts';
import { Tensor } from '../tensor.ts';
import type { Qwen3Model } from './qwen3.ts';

export interface GoldenPrompt {
  /** Null for a prompt of token ids with no text (random ids). */
  text: string | null;
  ids: number[];
  /** The positions the arrays below cover (a long prompt keeps a few); absent: every position. */
  positions?: number[];
  /** [position][sample] logits at the vocabulary ids in vocabSample. */
  sampledLogits: number[][];
  argmax: number[];
  rowNorm: number[];
}

export interface GoldenFixture {
  oracle: string;
  device: string;
  dtype: string;
  model: string;
  weightsSha256: string | null;
  vocabSample: number[];
  prompts: GoldenPrompt[];
}

export interface GoldenComparison {
  positions: number;
  /** ||ours - golden|| / ||golden|| over every sampled logit of every position. */
  relError: number;
  /** Fraction of positions whose full-row argmax matches. */
  argmaxAgreement: number;
  /** Largest relative difference of a full row's L2 norm. */
  maxRowNormRelDiff: number;
  /** The largest position compared (how far from 0 RoPE was checked). */
  maxPosition: number;
}

export function readGolden(file: string): GoldenFixture {
  return JSON.parse(readFileSync(file, 'utf8')) as GoldenFixture;
}

export function compareWithGolden(model: Qwen3Model, golden: GoldenFixture): GoldenComparison {
  let num = 0, den = 0, positions = 0, agree = 0, maxNorm = 0, maxPosition = 0;
  for (const [i, p] of golden.prompts.entries()) {
    const at = p.positions ?? p.ids.map((_, j) => j);
    if (at.length !== p.sampledLogits.length || at.some((pos) => !Number.isInteger(pos) || pos < 0 || pos >= p.ids.length))
      throw new Error(`golden prompt ${i}: ${at.length} positions in [0, ${p.ids.length}) expected for its ${p.sampledLogits.length} rows of logits`);
    // Only the compared rows come back to the host: a long prompt's full logits are [tokens, 151,936] floats.
    const logits = model.forwardLogits(p.ids);
    let kept = logits;
    if (p.positions) {
      const idx = Tensor.fromArray(Int32Array.from(at), [at.length], { dtype: 'i32', device: logits.device });
      kept = ops.gatherRows(logits, idx);
      idx.dispose();
      logits.dispose();
    }
    const rows = kept.toArray() as Float32Array;
    kept.dispose();
    const V = model.cfg.vocabSize;
    for (let t = 0; t < at.length; t++) {
      maxPosition = Math.max(maxPosition, at[t]!);
      const row = rows.subarray(t * V, (t + 1) * V);
      golden.vocabSample.forEach((v, j) => {
        const g = p.sampledLogits[t]![j]!;
        num += (row[v]! - g) ** 2;
        den += g * g;
      });
      let best = 0, norm = 0;
      for (let v = 0; v < V; v++) {
        if (row[v]! > row[best]!) best = v;
        norm += row[v]! * row[v]!;
      }
      if (best === p.argmax[t]) agree++;
      maxNorm = Math.max(maxNorm, Math.abs(Math.sqrt(norm) - p.rowNorm[t]!) / p.rowNorm[t]!);
      positions++;
    }
  }
  return { positions, relError: Math.sqrt(num / den), argmaxAgreement: agree / positions, maxRowNormRelDiff: maxNorm, maxPosition };
}
