export { recipe, lesson10Parts } from './recipe.ts';
export { FusedStepModel, fusedStepModel, loadFusedWeights, Workspace, type FusedLayerWeights, type FusedWeights, type ParallelHooks } from './fused-model.ts';
