export { recipe, batchedRecipe, lesson07Parts, type BatchedParts } from './recipe.ts';
export { BatchedRunner } from './batched-runner.ts';
export { KVPool, sizePool } from './kv-pool.ts';
export { PackedAttention, straightforwardAttention, type AttentionVariants, type PackedContext, type PagedAttentionOp } from './packed-attention.ts';
export { StaticBatchScheduler, needsPrefill, planPrefill, checkFits, worstCaseBlocks, type PagedScheduler, type SchedulerLimits } from './static-batch-scheduler.ts';
export { StepInputBuffer, type StepInput, type StepCapacity, type FixedLayout } from './step-input.ts';
export { PlainStepModel, plainStepModel, type StepModel, type StepModelFactory } from './step-model.ts';
