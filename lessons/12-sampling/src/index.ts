export { recipe, lesson12Parts } from './recipe.ts';
export { GpuSampler, PenaltyHistory, requestSeed, rowSpec } from './gpu-sampler.ts';
