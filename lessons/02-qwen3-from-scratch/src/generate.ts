// Greedy generation with no engine and no cache: every step runs the whole
// sequence through the model again and keeps only the last row of logits.
// Step n costs a forward over n tokens, so the whole generation is quadratic;
// lesson 04's KV cache removes exactly that.
import { ops, synchronize } from '@aios/engine-core';
import type { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';

export interface GreedyStep {
  token: number;
  /** Wall time of this step (a full forward over the sequence so far), ms. */
  ms: number;
}

export interface GreedyResult {
  tokens: number[];
  steps: GreedyStep[];
  finish: 'eos' | 'length';
}

/** The argmax of the last position's logits. */
function nextToken(model: Qwen3Model, ids: readonly number[]): number {
  const logits = model.forwardLogits(ids, { lastOnly: true }); // [1, vocab]: the LM head runs on the last row only
  try {
    const best = ops.argmax(logits.select(0, 0));
    const token = best.item();
    best.dispose();
    return token;
  } finally {
    logits.dispose();
  }
}

export function greedyGenerate(
  model: Qwen3Model,
  promptIds: readonly number[],
  opts: { maxTokens: number; eosTokenIds?: readonly number[]; onToken?: (token: number, step: GreedyStep) => void },
): GreedyResult {
  if (promptIds.length === 0) throw new Error('greedyGenerate: the prompt is empty');
  if (promptIds.length + opts.maxTokens > model.rope.maxPositions)
    throw new Error(`greedyGenerate: ${promptIds.length} prompt + ${opts.maxTokens} new tokens exceed the model's ${model.rope.maxPositions} positions`);
  const ids = [...promptIds];
  const tokens: number[] = [];
  const steps: GreedyStep[] = [];
  const eos = new Set(opts.eosTokenIds ?? []);
  for (let i = 0; i < opts.maxTokens; i++) {
    const t0 = performance.now();
    const token = nextToken(model, ids);
    synchronize(model.device); // item() already waited; explicit for clarity of the timing
    const step = { token, ms: performance.now() - t0 };
    steps.push(step);
    tokens.push(token);
    ids.push(token);
    opts.onToken?.(token, step);
    if (eos.has(token)) return { tokens, steps, finish: 'eos' };
  }
  return { tokens, steps, finish: 'length' };
}

