// Compares our Qwen3 forward with golden logits from Hugging Face transformers
// (engine-core/scripts/golden_logits.py writes them).
import { readFileSync } from 'node:fs';

import type { Qwen3Model } from './qwen3.ts';

export interface GoldenPrompt {
  text: string;
  ids: number[];
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
}

export function readGolden(file: string): GoldenFixture {
  return JSON.parse(readFileSync(file, 'utf8')) as GoldenFixture;
}

export function compareWithGolden(model: Qwen3Model, golden: GoldenFixture): GoldenComparison {
  let num = 0, den = 0, positions = 0, agree = 0, maxNorm = 0;
  for (const p of golden.prompts) {
    const logits = model.forwardLogits(p.ids);
    const rows = logits.toArray() as Float32Array;
    logits.dispose();
    const V = model.cfg.vocabSize;
    for (let t = 0; t < p.ids.length; t++) {
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
  return { positions, relError: Math.sqrt(num / den), argmaxAgreement: agree / positions, maxRowNormRelDiff: maxNorm };
}
