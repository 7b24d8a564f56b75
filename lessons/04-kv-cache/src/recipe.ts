// Lesson 04: lesson 03's engine with the recompute runner replaced by an
// incremental runner over a KV cache grown by concatenation.
import type { EngineContext, EngineParts, Recipe } from '@aios/engine-core/engine/types.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';
import { baselineScheduling } from '@aios/lesson-03-baseline-engine';

import { ConcatKVStore } from './concat-cache.ts';
import { IncrementalRunner } from './incremental-runner.ts';
import { CachedAttention, type CacheContext, type KVStore } from './kv-store.ts';

/** What a store's factory gets: the loaded model, and a warm-up forward (through a throwaway cache) to measure activation memory first. */
export interface StoreSetup {
  model: Qwen3Model<CacheContext>;
  /** Runs a prefill of `tokens` tokens and frees its cache: the caching allocator has then seen a long forward's activations. */
  warmUp(tokens: number): void;
}

/** Lesson 03's engine with an incremental runner over `store` in place of the recompute runner (the scheduler and sampler stay lesson 03's). */
export function withKVStore(
  name: string,
  lesson: number,
  summary: string,
  /** Called once the model is loaded (a store may size itself from the memory the weights left). */
  makeStore: (ctx: EngineContext, setup: StoreSetup) => KVStore,
  /** Lines for EngineParts.describe (how the store was sized). */
  describe?: (store: KVStore) => string[],
): Recipe {
  return {
    name,
    lesson,
    summary,
    shape: 'sequential',
    build(ctx): EngineParts {
      const attention = new CachedAttention();
      const model = Qwen3Model.load<CacheContext>(ctx.modelDir, { device: ctx.device, dtype: ctx.dtype, attention });
      const warmUp = (tokens: number): void => {
        const scratch = new ConcatKVStore();
        attention.use(scratch);
        const seq = new Sequence(Array.from({ length: tokens }, (_, i) => (i * 7919) % ctx.cfg.vocabSize), new SamplingParams({ maxTokens: 1 }));
        try {
          model.forwardAt(seq.promptIds, 0, { seq, start: 0 }).dispose();
        } finally {
          scratch.dispose();
        }
      };
      const store = makeStore(ctx, { model, warmUp });
      attention.use(store);
      const runner = new IncrementalRunner(model, store);
      return {
        runner,
        ...baselineScheduling(),
        kvStats: () => store.stats(),
        ...(describe ? { describe: () => describe(store) } : {}),
        dispose: () => runner.dispose(),
      };
    },
  };
}

export const recipe: Recipe = withKVStore('kv-cache', 4, 'KV cache grown by concatenation; only new tokens run', () => new ConcatKVStore());
