export { recipe, lesson11Parts } from './recipe.ts';
export { GraphStepModel, graphStepModel, batchBuckets, contextBuckets } from './graph-model.ts';
