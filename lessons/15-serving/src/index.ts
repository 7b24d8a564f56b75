export { recipe, servedRecipe } from './recipe.ts';
export { ServingServer, createServer, toApiError, DEFAULT_MAX_QUEUE, type ServerOptions } from './server.ts';
export { EngineLoop, QueueFullError, type DeltaListener, type StepTiming, type Submission } from './engine-loop.ts';
export { ServerMetrics } from './metrics.ts';
export { ApiError } from './protocol.ts';
export { SERVE_FLAGS, SERVE_SPEC, runServeCli } from './cli.ts';
