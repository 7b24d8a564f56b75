// Test-only: lesson 11's engine with a sampler that also returns log-probs, so the
// server's logprobs paths can be tested before lesson 12's sampler is in main. The
// tokens are lesson 03's HostSampler's (same draws, same seeds); the log-probs are
// a real log-softmax of the logits row in float64 (the distribution before
// temperature and filters, as SamplingParams.logprobs defines it), the top ones
// most likely first. Min-p and the penalties are still refused.
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Recipe, SampleResult, SampledLogprobs, Sampler } from '@aios/engine-core/engine/types.ts';
import type { Tensor } from '@aios/engine-core/tensor.ts';
import { HostSampler } from '@aios/lesson-03-baseline-engine';
import { batchedRecipe } from '@aios/lesson-07-batching';
import { lesson11Parts } from '@aios/lesson-11-cuda-graphs';

/** log-softmax of one row: the chosen token's log-prob and the k most likely (ties: lower id first). */
export function rowLogprobs(row: Float32Array, token: number, k: number): SampledLogprobs {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  const top: { token: number; logprob: number }[] = [];
  if (k > 0) {
    const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
    for (const t of order.slice(0, k)) top.push({ token: t, logprob: row[t]! - logZ });
  }
  return { token, logprob: row[token]! - logZ, top };
}

export class LogprobTestSampler implements Sampler {
  private readonly inner = new HostSampler();

  unsupported(params: SamplingParams): string | undefined {
    const asked = [params.minP > 0 && 'minP', params.penalized && 'penalties'].filter(Boolean);
    return asked.length ? `the test sampler has no ${asked.join(', ')}` : undefined;
  }

  sample(logits: Tensor, sequences: readonly Sequence[]): SampleResult {
    const { tokens } = this.inner.sample(logits, sequences);
    if (!sequences.some((s) => s.params.logprobs !== undefined)) return { tokens };
    const V = logits.shape[1]!;
    const host = logits.toArray() as Float32Array;
    const logprobs = sequences.map((s, i) => (s.params.logprobs === undefined ? undefined : rowLogprobs(host.subarray(i * V, (i + 1) * V), tokens[i]!, s.params.logprobs)));
    return { tokens, logprobs };
  }

  release(seq: Sequence): void {
    this.inner.release(seq);
  }
}

export const logprobTestRecipe: Recipe = batchedRecipe('cuda-graphs+test-logprobs', 11, "lesson 11's engine with a host log-softmax beside lesson 03's sampler (tests only)", {
  ...lesson11Parts,
  sampler: () => new LogprobTestSampler(),
});
