export { recipe, lesson14Parts } from './recipe.ts';
export { tensorParallelModel } from './model.ts';
export { TensorParallelHooks } from './parallel-hooks.ts';
export { ShardRunner } from './shard-runner.ts';
export { RankGroup, rankDevice, shardContext, collectivesFor, type PartsRef } from './rank-group.ts';
export { SharedMemoryCollectives, NcclCollectives, agreeOnMin } from './collectives.ts';
export { GroupMemory, type GroupShape } from './group-memory.ts';
export { encodePlan, decodePlan, PlanWriter, PlanReader, planCapacity } from './plan-channel.ts';
