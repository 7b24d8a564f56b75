// Lesson 03's engine: one request at a time, no cache, the whole sequence
// recomputed every step, sampling on the host.
import type { EngineParts, Recipe } from '@aios/engine-core/engine/types.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';

import { HostSampler } from './host-sampler.ts';
import { RecomputeRunner } from './recompute-runner.ts';
import { SerialScheduler } from './serial-scheduler.ts';

/** The parts later lessons keep until they replace them: lesson 07 the scheduler, lesson 12 the sampler. */
export function baselineScheduling(): Pick<EngineParts, 'scheduler' | 'sampler'> {
  return { scheduler: new SerialScheduler(), sampler: new HostSampler() };
}

export const recipe: Recipe = {
  name: 'baseline-engine',
  lesson: 3,
  shape: 'sequential',
  summary: 'one request at a time; every step recomputes the whole sequence',
  build(ctx): EngineParts {
    const model = Qwen3Model.load(ctx.modelDir, { device: ctx.device, dtype: ctx.dtype });
    const runner = new RecomputeRunner(model);
    return { runner, ...baselineScheduling(), dispose: () => runner.dispose() };
  },
};
