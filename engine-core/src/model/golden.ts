// Compares our Qwen3 forward with golden logits from Hugging Face transformers
// (engine-core/scripts/golden_logits.py writes them).
import { readFileSync } from 'node:fs';

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
  for (const p of golden.prompts) {
    const logits = model.forwardLogits(p.ids);
    const rows = logits.toArray() as Float32Array;
    logits.dispose();
    const V = model.cfg.vocabSize;
    const at = p.positions ?? p.ids.map((_, i) => i);
    for (let k = 0; k < at.length; k++) {
      const pos = at[k]!;
      maxPosition = Math.max(maxPosition, pos);
      const row = rows.subarray(pos * V, (pos + 1) * V);
      const t = k;
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
