// `pnpm bench serve`: the serving benchmark, as vLLM's benchmark_serving measures one.
// The throughput workload's requests (their prompt lengths and max_tokens) arrive at
// a given rate (Poisson: exponential gaps, seeded; "inf" sends them all at once) at
// the HTTP server, streamed; per rate it records the output throughput and, per
// request, time to first token (TTFT), time per output token after the first (TPOT)
// and the gaps between tokens (ITL), p50 and p99. The same requests run offline
// (LLM.generate on the same engine) first: the server's share of that rate is the
// cost of serving. The engine loop's own time between steps is recorded too.
import path from 'node:path';
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { defaultDevice, parseDevice } from '@aios/engine-core/backend.ts';
import { latencySummary, modelInfo } from '@aios/engine-core/bench/harness.ts';
import { CPU_DEFAULT_REQUESTS, ENGINE_RUN_FLAGS, chooseEngineOptions } from '@aios/engine-core/bench/lesson-demo.ts';
import { REPO_ROOT, type ServeRateResult, type ServeRecord, currentCommit, hardwareInfo, writeRecord, resultsDir } from '@aios/engine-core/bench/records.ts';
import { type Workload, firstRequests, throughputWorkload } from '@aios/engine-core/bench/workloads.ts';
import { type CommandSpec, DEVICE_FLAG, type FlagSpecs, type FlagValues, MODEL_FLAG, RECORD_FLAGS, UsageError, chooseRecord, deviceFlag, intFlag, runCli } from '@aios/engine-core/cli/args.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { mulberry32 } from '@aios/engine-core/random.ts';

import { type LoadJob, type RequestTiming, streamOne } from './load-client.ts';
import { servedRecipe } from './recipe.ts';
import { type ServingServer, createServer } from './server.ts';

/** On the CPU: the throughput workload's first CPU_DEFAULT_REQUESTS requests, output lengths cut, so a run takes well under a minute. */
const CPU_MAX_TOKENS = 64;

const BENCH_SERVE_FLAGS = {
  ...MODEL_FLAG,
  ...DEVICE_FLAG,
  rates: { type: 'string', value: 'R,R,...', help: 'request rates in requests/s, "inf" for all at once (default: inf,4,16,64 on a GPU; inf,8 on the CPU)' },
  requests: { type: 'string', value: 'N', help: `the throughput workload's first N requests (default: all 256 on a GPU, ${CPU_DEFAULT_REQUESTS} on the CPU)` },
  'max-tokens': { type: 'string', value: 'N', help: `cap each request's max_tokens at N (default: none on a GPU, ${CPU_MAX_TOKENS} on the CPU)` },
  seed: { type: 'string', value: 'N', help: 'seed of the Poisson arrivals (default 0)' },
  ...RECORD_FLAGS,
  'max-num-seqs': ENGINE_RUN_FLAGS['max-num-seqs'],
  'max-num-batched-tokens': ENGINE_RUN_FLAGS['max-num-batched-tokens'],
  'gpu-memory-utilization': ENGINE_RUN_FLAGS['gpu-memory-utilization'],
} as const satisfies FlagSpecs;

const BENCH_SERVE_SPEC: CommandSpec<typeof BENCH_SERVE_FLAGS> = {
  command: 'pnpm bench serve',
  summary: "The serving benchmark: the throughput workload's requests arrive at each rate (Poisson) at lesson 15's server, streamed; per rate: throughput, TTFT, TPOT, ITL (p50, p99), and the same requests offline for comparison.",
  flags: BENCH_SERVE_FLAGS,
  notes: ['One record of kind "serve" per run in bench-results/ (on a GPU; --record on the CPU).'],
};


/** Arrival times in ms from the start: exponential gaps of mean 1000/rate, seeded; all 0 for an unbounded rate. */
export function poissonArrivals(count: number, rate: number, seed: number): number[] {
  if (!Number.isFinite(rate)) return Array.from({ length: count }, () => 0);
  const rand = mulberry32(seed);
  let t = 0;
  return Array.from({ length: count }, () => {
    const at = t;
    t += (-Math.log(1 - rand()) / rate) * 1000;
    return at;
  });
}

export function parseRates(s: string): number[] {
  const rates = s.split(',').map((r) => r.trim());
  return rates.map((r) => {
    if (r === 'inf') return Infinity;
    const n = Number(r);
    if (r === '' || !(n > 0) || !Number.isFinite(n)) throw new UsageError(`--rates must be positive numbers or inf, comma-separated, got "${s}"`);
    return n;
  });
}

/**
 * Node flags that let a child run TypeScript: the parent's own where tsx started it
 * (its execArgv carries tsx's loader), else tsx's loader from the repository's node_modules (under vitest).
 */
function typeScriptExecArgv(): string[] {
  if (process.execArgv.some((a) => /[\/]tsx[\/]dist[\/]/.test(a))) return process.execArgv.filter((a, i, all) => a !== '--eval' && all[i - 1] !== '--eval');
  const loader = path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs');
  if (!existsSync(loader)) throw new Error(`the load client needs tsx to run TypeScript: start this under tsx, or install it (${loader} is missing)`);
  return ['--import', pathToFileURL(loader).href];
}

/** Runs the load in a child process (load-client.ts): the client's stream parsing stays off the server's event loop and cores. */
function loadInChild(job: LoadJob): Promise<RequestTiming[]> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./load-client.ts', import.meta.url)), [], { execArgv: typeScriptExecArgv(), env: { ...process.env, AIOS_LOAD_CLIENT: '1' } });
    let answered = false;
    child.once('message', (m: { timings?: RequestTiming[]; error?: string }) => {
      answered = true;
      if (m.timings) resolve(m.timings);
      else reject(new Error(`the load client failed: ${m.error ?? 'no message'}`));
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (!answered) reject(new Error(`the load client exited with code ${code} before answering`));
    });
    child.send(job);
  });
}

/** Sends the workload at `rate` and measures it. */
async function measureRate(server: ServingServer, url: string, w: Workload, rate: number, seed: number): Promise<ServeRateResult> {
  const arrivals = poissonArrivals(w.requests.length, rate, seed);
  const loop0 = { ...server.loop.totals };
  const requests = w.requests.map((r) => ({ promptIds: r.promptIds, maxTokens: r.params.maxTokens, temperature: r.params.temperature, ignoreEos: r.params.ignoreEos }));
  const timings = (await loadInChild({ url, model: server.modelName, requests, arrivalsMs: arrivals })).map((t) => ({ ...t, outputTokens: t.tokenMs.length }));
  const seconds = Math.max(...timings.map((t) => t.doneMs)) / 1000;
  const outputTokens = timings.reduce((a, t) => a + t.outputTokens, 0);
  const ttft = timings.map((t) => t.tokenMs[0]! - t.sentMs);
  const tpot = timings.filter((t) => t.outputTokens > 1).map((t) => (t.tokenMs[t.outputTokens - 1]! - t.tokenMs[0]!) / (t.outputTokens - 1));
  const itl = timings.flatMap((t) => t.tokenMs.slice(1).map((x, k) => x - t.tokenMs[k]!));
  const e2e = timings.map((t) => t.doneMs - t.sentMs);
  const steps = server.loop.totals.steps - loop0.steps;
  return {
    rate: Number.isFinite(rate) ? rate : null,
    requests: w.requests.length,
    seconds,
    outputTokens,
    outputTokPerS: outputTokens / seconds,
    requestsPerS: w.requests.length / seconds,
    ttftMs: latencySummary(ttft),
    tpotMs: latencySummary(tpot),
    itlMs: latencySummary(itl),
    e2eMs: latencySummary(e2e),
    loop: {
      steps,
      stepMsMean: (1000 * (server.loop.totals.stepSeconds - loop0.stepSeconds)) / Math.max(1, steps),
      overheadMsMean: (1000 * (server.loop.totals.overheadSeconds - loop0.overheadSeconds)) / Math.max(1, steps),
      dispatchMsMean: (1000 * (server.loop.totals.dispatchSeconds - loop0.dispatchSeconds)) / Math.max(1, steps),
    },
  };
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function describeRate(r: ServeRateResult): string {
  return (
    `rate ${r.rate === null ? 'inf' : `${r.rate}/s`}: ${r.outputTokPerS.toFixed(1)} output tok/s (${r.outputTokens} tokens, ${r.requests} requests in ${r.seconds.toFixed(1)} s); ` +
    `TTFT p50 ${fmt(r.ttftMs.p50)} p99 ${fmt(r.ttftMs.p99)} ms, TPOT p50 ${fmt(r.tpotMs.p50)} p99 ${fmt(r.tpotMs.p99)} ms, ITL p50 ${fmt(r.itlMs.p50)} p99 ${fmt(r.itlMs.p99)} ms; ` +
    `loop: ${r.loop.steps} steps, ${fmt(r.loop.stepMsMean)} ms in the step (${fmt(r.loop.dispatchMsMean ?? 0)} ms of it handing out deltas while the device works) and ${fmt(r.loop.overheadMsMean)} ms around it per step`
  );
}

export interface ServeBenchOptions {
  workload: Workload;
  rates: number[];
  seed?: number;
  log?: (s: string) => void;
}

/** The whole benchmark on a server it starts and stops: offline first, then each rate. */
export async function runServeBench(server: ServingServer, opts: ServeBenchOptions): Promise<{ offline: { outputTokPerS: number; seconds: number; outputTokens: number }; rates: ServeRateResult[] }> {
  const log = opts.log ?? console.log;
  const url = await server.listen(0);
  const w = opts.workload;
  // Warm-up: one short request through HTTP (first-use allocations, JIT).
  await streamOne(url, server.modelName, { promptIds: w.requests[0]!.promptIds, maxTokens: 4, temperature: 0, ignoreEos: true });
  // The offline run steps the same engine directly: the loop must be done with its last turn first.
  await server.loop.idle();
  const off = server.llm.generateWithStats(
    w.requests.map((r) => r.promptIds),
    w.requests.map((r) => r.params),
    { decodeText: false },
  );
  const offline = { outputTokPerS: off.stats.outputTokens / off.stats.seconds, seconds: off.stats.seconds, outputTokens: off.stats.outputTokens };
  log(`offline (LLM.generate, the same engine): ${offline.outputTokPerS.toFixed(1)} output tok/s (${offline.outputTokens} tokens in ${offline.seconds.toFixed(1)} s)`);
  const rates: ServeRateResult[] = [];
  for (const rate of opts.rates) {
    await server.loop.idle();
    const r = await measureRate(server, url, w, rate, opts.seed ?? 0);
    log(`${describeRate(r)}; ${((100 * r.outputTokPerS) / offline.outputTokPerS).toFixed(1)}% of offline`);
    rates.push(r);
  }
  return { offline, rates };
}

async function main(values: FlagValues<typeof BENCH_SERVE_FLAGS>): Promise<number> {
  const device = deviceFlag(values.device, parseDevice) ?? defaultDevice();
  const cpu = device === 'cpu';
  const rates = parseRates(values.rates ?? (cpu ? 'inf,8' : 'inf,4,16,64'));
  const full = throughputWorkload();
  const n = intFlag('requests', values.requests, { min: 1, max: full.requests.length }) ?? (cpu ? CPU_DEFAULT_REQUESTS : full.requests.length);
  const cap = intFlag('max-tokens', values['max-tokens'], { min: 1 }) ?? (cpu ? CPU_MAX_TOKENS : undefined);
  const seed = intFlag('seed', values.seed, { min: 0 }) ?? 0;
  const record = chooseRecord(device, values);
  let w = n < full.requests.length ? firstRequests(full, n) : full;
  if (cap !== undefined) {
    const requests = w.requests.map((r) => ({ promptIds: r.promptIds, params: new SamplingParams({ temperature: r.params.temperature, ignoreEos: true, maxTokens: Math.min(cap, r.params.maxTokens) }) }));
    w = {
      ...w,
      name: `${w.name}-max${cap}`,
      description: `${w.description}; max_tokens capped at ${cap}`,
      requests,
      totals: { requests: requests.length, promptTokens: w.totals.promptTokens, outputTokens: requests.reduce((a, r) => a + r.params.maxTokens, 0) },
    };
  }
  const recipe = servedRecipe;
  console.log(
    `pnpm bench serve: lesson ${recipe.lesson} ${recipe.name} on ${device}, workload ${w.name}: ${w.totals.requests} requests, ${w.totals.promptTokens} prompt + ${w.totals.outputTokens} output tokens; ` +
      `rates ${rates.map((r) => (Number.isFinite(r) ? `${r}/s` : 'inf')).join(', ')} (Poisson, seed ${seed})${record ? ', recorded' : ' (not recorded: --record to keep it)'}`,
  );
  const server = createServer({
    recipe,
    device,
    engine: chooseEngineOptions(values),
    maxQueue: Math.max(1024, w.requests.length),
    ...(values.model !== undefined ? { model: values.model } : {}),
  });
  try {
    const result = await runServeBench(server, { workload: w, rates, seed });
    if (record) {
      const rec: ServeRecord = {
        schema: 1,
        kind: 'serve',
        lesson: 15,
        date: new Date().toISOString(),
        commit: currentCommit(),
        hardware: hardwareInfo(device),
        settings: { engine: server.llm.options, servedLesson: recipe.lesson, seed, maxTokensCap: cap ?? null, client: 'fetch, one HTTP request per workload request, streamed (SSE)' },
        recipe: recipe.name,
        servedLesson: recipe.lesson,
        workload: w.name,
        model: modelInfo(server.llm),
        results: { offline: result.offline, rates: result.rates },
      };
      console.log(`recorded ${path.relative(process.cwd(), writeRecord(rec, resultsDir()))}`);
    }
  } finally {
    await server.close();
  }
  return 0;
}

export function runBenchServeCli(argv?: readonly string[]): Promise<number> {
  return runCli(BENCH_SERVE_SPEC, main, argv ? { argv } : {});
}
