// The model runner once there is a cache: prefill runs the prompt's tokens,
// every decode step runs one new token at its position, and attention finds
// the earlier tokens' keys and values in the store.
import type { Tensor } from '@aios/engine-core';
import type { ModelRunner, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';

import type { CacheContext, KVStore } from './kv-store.ts';

export class IncrementalRunner implements ModelRunner {
  constructor(
    readonly model: Qwen3Model<CacheContext>,
    readonly store: KVStore,
  ) {}

  run(plan: StepPlan): Tensor {
    if (plan.sequences.length !== 1) throw new Error('IncrementalRunner runs one sequence at a time (batching is lesson 07)');
    const seq = plan.sequences[0]!;
    const start = seq.cachedTokens;
    const P = seq.promptIds.length;
    // The tokens not yet in the cache, without copying the whole sequence: in decode, the last output token.
    const newIds = start >= P ? seq.outputIds.slice(start - P) : [...seq.promptIds.slice(start), ...seq.outputIds];
    const hidden = this.model.forwardAt(newIds, start, { seq, start });
    try {
      return this.model.logits(hidden.narrow(0, newIds.length - 1, 1));
    } finally {
      hidden.dispose();
    }
  }

  release(seq: Sequence): void {
    this.store.release(seq);
  }

  dispose(): void {
    this.store.dispose();
    this.model.dispose();
  }
}
