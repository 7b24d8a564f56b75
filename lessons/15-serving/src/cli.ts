// `pnpm serve`: the newest lesson's engine behind the OpenAI API, until Ctrl-C.
//
//   pnpm serve [--model DIR] [--port N] [--host ADDR] [--tp N] [--api-key KEY] [--max-queue N]
import { defaultDevice, parseDevice } from '@aios/engine-core/backend.ts';
import { ENGINE_RUN_FLAGS, chooseEngineOptions } from '@aios/engine-core/bench/lesson-demo.ts';
import { type CommandSpec, DEVICE_FLAG, type FlagSpecs, type FlagValues, MODEL_FLAG, UsageError, deviceFlag, intFlag, runCli } from '@aios/engine-core/cli/args.ts';
import type { Recipe } from '@aios/engine-core/engine/types.ts';

import { servedRecipe } from './recipe.ts';
import { DEFAULT_MAX_QUEUE, type ServingServer, createServer } from './server.ts';

export const SERVE_FLAGS = {
  ...MODEL_FLAG,
  ...DEVICE_FLAG,
  port: { type: 'string', value: 'N', help: 'the TCP port (default 8000; 0: any free port)' },
  host: { type: 'string', value: 'ADDR', help: 'the address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)' },
  tp: { type: 'string', value: 'N', help: 'tensor-parallel GPUs (default 1): the model split over N GPUs, lesson 14' },
  'api-key': { type: 'string', value: 'KEY', help: 'require Authorization: Bearer KEY on /v1 routes (default: none)' },
  'max-queue': { type: 'string', value: 'N', help: `most requests waiting for the scheduler; more get 429 (default ${DEFAULT_MAX_QUEUE})` },
  'served-model-name': { type: 'string', value: 'NAME', help: "the name clients pass as `model` (default: the model folder's name)" },
  'max-num-seqs': ENGINE_RUN_FLAGS['max-num-seqs'],
  'max-num-batched-tokens': ENGINE_RUN_FLAGS['max-num-batched-tokens'],
  'gpu-memory-utilization': ENGINE_RUN_FLAGS['gpu-memory-utilization'],
} as const satisfies FlagSpecs;

export const SERVE_SPEC: CommandSpec<typeof SERVE_FLAGS> = {
  command: 'pnpm serve',
  summary: "An OpenAI-compatible HTTP server (GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /health, GET /metrics) over the newest lesson's engine.",
  flags: SERVE_FLAGS,
  notes: ['Stop it with Ctrl-C. Talk to it with the openai npm client (baseURL http://HOST:PORT/v1) or curl: lessons/15-serving/README.md.'],
};

/** The server the flags describe (not yet listening), its port and host. */
export function serverFromFlags(values: FlagValues<typeof SERVE_FLAGS>, recipe: Recipe = servedRecipe, log: (s: string) => void = console.log): { server: ServingServer; port: number; host: string } {
  const device = deviceFlag(values.device, parseDevice) ?? defaultDevice();
  const port = intFlag('port', values.port, { min: 0, max: 65535 }) ?? 8000;
  const host = values.host ?? '127.0.0.1';
  if (host.trim() === '') throw new UsageError('--host must be an address, got ""');
  const tp = intFlag('tp', values.tp, { min: 1 }) ?? 1;
  if (tp !== 1 && !recipe.tensorParallel) throw new UsageError(`--tp ${tp}: the served engine (lesson ${recipe.lesson}, ${recipe.name}) runs on one GPU; tensor parallelism comes with lesson 14`);
  if (values['api-key'] !== undefined && values['api-key'].trim() === '') throw new UsageError('--api-key must not be empty');
  const maxQueue = intFlag('max-queue', values['max-queue'], { min: 1 }) ?? DEFAULT_MAX_QUEUE;
  const server = createServer({
    recipe,
    device,
    engine: { ...chooseEngineOptions(values), tensorParallelSize: tp },
    maxQueue,
    log,
    ...(values.model !== undefined ? { model: values.model } : {}),
    ...(values['api-key'] !== undefined ? { apiKey: values['api-key'] } : {}),
    ...(values['served-model-name'] !== undefined ? { modelName: values['served-model-name'] } : {}),
  });
  return { server, port, host };
}

export async function serveMain(values: FlagValues<typeof SERVE_FLAGS>): Promise<number> {
  const { server, port, host } = serverFromFlags(values);
  const r = server.llm.recipe;
  console.log(`pnpm serve: lesson ${String(r.lesson).padStart(2, '0')} ${r.name} on ${server.llm.device}, model ${server.modelName} (${server.llm.dtype}, ${server.llm.cfg.maxPositionEmbeddings} positions)`);
  for (const line of server.llm.parts.describe?.() ?? []) console.log(`  ${line}`);
  const url = await server.listen(port, host);
  console.log(`listening on ${url}  (OpenAI base URL ${url}/v1${values['api-key'] !== undefined ? ', API key required' : ''}; Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  console.log('stopping: aborting what runs, closing the port');
  await server.close();
  return 0;
}

export function runServeCli(argv?: readonly string[]): Promise<number> {
  return runCli(SERVE_SPEC, serveMain, argv ? { argv } : {});
}
