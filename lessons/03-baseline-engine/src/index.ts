export { recipe, baselineScheduling } from './recipe.ts';
export { SerialScheduler } from './serial-scheduler.ts';
export { RecomputeRunner } from './recompute-runner.ts';
export { HostSampler, sampleRow } from './host-sampler.ts';
