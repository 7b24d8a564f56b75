export { recipe, lesson08Parts } from './recipe.ts';
export { ContinuousBatchingScheduler } from './continuous-scheduler.ts';
