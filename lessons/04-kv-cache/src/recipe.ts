// Lesson 04: lesson 03's engine with the recompute runner replaced by an
// incremental runner over a KV cache grown by concatenation.
import type { EngineContext, EngineParts, Recipe } from '@aios/engine-core/engine/types.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';
import { baselineScheduling } from '@aios/lesson-03-baseline-engine';

import { ConcatKVStore } from './concat-cache.ts';
import { IncrementalRunner } from './incremental-runner.ts';
import { CachedAttention, type CacheContext, type KVStore } from './kv-store.ts';

/** Lesson 03's engine with an incremental runner over `store` in place of the recompute runner (the scheduler and sampler stay lesson 03's). */
export function withKVStore(
  name: string,
  lesson: number,
  summary: string,
  /** Called once the model is loaded (a store may size itself from the memory the weights left). */
  makeStore: (ctx: EngineContext, model: Qwen3Model<CacheContext>) => KVStore,
): Recipe {
  return {
    name,
    lesson,
    summary,
    build(ctx): EngineParts {
      const attention = new CachedAttention(new ConcatKVStore());
      const model = Qwen3Model.load<CacheContext>(ctx.modelDir, { device: ctx.device, dtype: ctx.dtype, attention });
      const store = makeStore(ctx, model);
      attention.store = store;
      const runner = new IncrementalRunner(model, store);
      return { runner, ...baselineScheduling(), kvStats: () => store.stats(), dispose: () => runner.dispose() };
    },
  };
}

export const recipe: Recipe = withKVStore('kv-cache', 4, 'KV cache grown by concatenation; only new tokens run', () => new ConcatKVStore());
