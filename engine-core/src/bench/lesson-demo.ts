// What `pnpm lesson N` runs for an engine lesson (03 on), in this order, each step
// announced before it starts:
//
//   1. the plan: the model, the device, the workload, the repeats
//   2. the equivalence check: the engine's greedy tokens for the first sample prompt
//      against lesson 02's plain forward (its greedyGenerate, the same device and dtype)
//   3. a few sample generations
//   4. a warm-up, then a calibration that estimates the run's time
//   5. the workload, `repeats` times, with progress from its first second
//   6. the record (median run and every run's rate) and the comparison with the
//      previous lesson's record on the same card
//
// Every lesson takes the same flags (DEMO_FLAGS); a lesson adds lines after its run
// with LessonDemoOptions.after. What the engine's parts say about themselves
// (EngineParts.describe: the pool, the workspace, the graphs) is printed for every lesson.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { type Device, defaultDevice, emptyCache, native, parseDevice } from '../backend.ts';
import { type CommandSpec, DEVICE_FLAG, type FlagSpecs, type FlagValues, MODEL_FLAG, RECORD_FLAGS, UsageError, choiceFlag, chooseRecord, deviceFlag, intFlag, positiveFlag, runCli } from '../cli/args.ts';
import { FIRST_WORKLOAD_LESSON, LESSONS, lessonDir } from '../cli/lessons.ts';
import type { DType } from '../dtype.ts';
import { LLM } from '../engine/llm.ts';
import { SamplingParams } from '../engine/sampling-params.ts';
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions, type GenerateProgress, type Recipe } from '../engine/types.ts';
import { defaultDtype, loadConfig } from '../model/config.ts';
import { Qwen3Model } from '../model/qwen3.ts';
import { resolveModel } from '../model/resolve.ts';
import { Tokenizer } from '../tokenizer.ts';
import {
  type BenchRunResult,
  benchRecordFor,
  compareWithPrevious,
  describePrefixCache,
  describeRepeats,
  findLatestRecord,
  modelInfo,
  measureWorkload,
  summarizeRun,
} from './harness.ts';
import { hardwareInfo, writeRecord } from './records.ts';
import { WORKLOAD_NAMES, type Workload, type WorkloadName, firstRequests, workload as makeWorkload } from './workloads.ts';

/** The CPU default: the course workload's first requests, sized so lesson 03 (the slowest) runs about a minute on 2 cores. */
export const CPU_DEFAULT_REQUESTS = 16;
/** Runs of the workload per lesson on a GPU; the record keeps the median and the spread. */
export const GPU_DEFAULT_REPEATS = 3;

/** The flags every engine lesson and `pnpm bench` share. */
export const ENGINE_RUN_FLAGS = {
  ...MODEL_FLAG,
  ...DEVICE_FLAG,
  workload: { type: 'string', value: WORKLOAD_NAMES.join('|'), help: `the workload (default: course on a GPU; on the CPU its first ${CPU_DEFAULT_REQUESTS} requests, about a minute)` },
  requests: { type: 'string', value: 'N', help: "only the workload's first N requests (recorded as e.g. course-4of32)" },
  repeats: { type: 'string', value: 'N', help: `run the workload N times; the record keeps the median and the spread (default ${GPU_DEFAULT_REPEATS} on a GPU, 1 on the CPU)` },
  'time-budget': { type: 'string', value: 'S', help: 'stop starting new steps after S seconds of each run (the record says partial)' },
  ...RECORD_FLAGS,
  'no-progress': { type: 'boolean', help: 'no progress bar, a line every 10% (and every 5 s) instead' },
  'max-num-seqs': { type: 'string', value: 'N', help: `most sequences in one step (default ${DEFAULT_ENGINE_OPTIONS.maxNumSeqs}; the batched lessons 07 on)` },
  'max-num-batched-tokens': { type: 'string', value: 'N', help: `most tokens in one step (default ${DEFAULT_ENGINE_OPTIONS.maxNumBatchedTokens}; lessons 07 on)` },
  'gpu-memory-utilization': { type: 'string', value: 'F', help: `share of the GPU's memory the engine may use, in (0, 1] (default ${DEFAULT_ENGINE_OPTIONS.gpuMemoryUtilization})` },
  tp: { type: 'string', value: 'N', help: 'split the model over N ranks: GPUs cuda:0..N-1, or N threads on the CPU (lesson 14 on; default 1)' },
} as const satisfies FlagSpecs;

/** The engine limits the flags set (undefined: the default). */
export function chooseEngineOptions(values: { 'max-num-seqs'?: string; 'max-num-batched-tokens'?: string; 'gpu-memory-utilization'?: string; tp?: string }): Partial<EngineOptions> {
  const util = positiveFlag('gpu-memory-utilization', values['gpu-memory-utilization']);
  if (util !== undefined && util > 1) throw new UsageError(`--gpu-memory-utilization must be in (0, 1], got ${util}`);
  return {
    maxNumSeqs: intFlag('max-num-seqs', values['max-num-seqs'], { min: 1 }),
    maxNumBatchedTokens: intFlag('max-num-batched-tokens', values['max-num-batched-tokens'], { min: 1 }),
    gpuMemoryUtilization: util,
    tensorParallelSize: intFlag('tp', values.tp, { min: 1 }),
  };
}

/**
 * AIOS_PROFILE_STEP=N: the profiler captures step N of the first timed run only
 * (run under `ncu --profile-from-start off`), so a profile shows one step's kernels.
 */
function profileStep(env: string | undefined): ((p: GenerateProgress) => void) | undefined {
  if (env === undefined) return undefined;
  const step = Number(env);
  if (!Number.isInteger(step) || step < 2) throw new Error(`AIOS_PROFILE_STEP must be a step number >= 2 (step 1 starts before any callback), got "${env}"`);
  let done = 0;
  return () => {
    done++;
    if (done === step - 1) native.profiler(true);
    if (done === step) native.profiler(false);
  };
}

const DEMO_FLAGS = {
  ...ENGINE_RUN_FLAGS,
  'no-samples': { type: 'boolean', help: 'skip the sample generations' },
  'no-check': { type: 'boolean', help: "skip the equivalence check against lesson 02's plain forward" },
} as const satisfies FlagSpecs;

export type LessonDemoFlags = FlagValues<typeof DEMO_FLAGS>;

export interface LessonDemoOptions {
  /** Lesson-specific lines after the run (what concatenation copied, say). */
  after?: (llm: LLM, result: BenchRunResult) => void;
  /** Called as each timed run of the workload starts (after the samples, the warm-up and the calibration). */
  onRunStart?: (llm: LLM) => void;
}

export const SAMPLE_PROMPTS = ['Write a haiku about memory bandwidth.', 'What is 17 * 23?', 'Name three uses of a GPU.'];
const SAMPLE_TOKENS = 24;

export interface WorkloadChoice {
  workload: Workload;
  /** Why this workload: "the CPU default (...)", or "--workload course". */
  why: string;
}

/** The workload a run uses: --workload / --requests when given; the course workload on a GPU; its first requests on the CPU. */
export function chooseWorkload(device: Device, workloadFlag: string | undefined, requestsFlag: string | undefined): WorkloadChoice {
  const name = choiceFlag('workload', workloadFlag, WORKLOAD_NAMES);
  let w = makeWorkload((name ?? 'course') as WorkloadName);
  const requests = intFlag('requests', requestsFlag, { min: 1, max: w.requests.length });
  if (requests !== undefined) return { workload: firstRequests(w, requests), why: `--requests ${requests}` };
  if (name !== undefined || device !== 'cpu') return { workload: w, why: name ? `--workload ${name}` : 'the default on a GPU' };
  w = firstRequests(w, CPU_DEFAULT_REQUESTS);
  return {
    workload: w,
    why: `the CPU default: the course workload's first ${CPU_DEFAULT_REQUESTS} of ${w.subset!.of} requests, about a minute for lesson 03 on 2 cores (--workload course for all of them)`,
  };
}

/** --repeats, or the default for the device. */
export function chooseRepeats(device: Device, repeatsFlag: string | undefined): number {
  return intFlag('repeats', repeatsFlag, { min: 1, max: 100 }) ?? (device === 'cpu' ? 1 : GPU_DEFAULT_REPEATS);
}

export { chooseRecord };

// ------------------------------------------------------------ the equivalence check

type GreedyGenerate = (model: Qwen3Model, promptIds: readonly number[], opts: { maxTokens: number; eosTokenIds?: readonly number[] }) => { tokens: number[] };

/** Lesson 02's greedyGenerate, loaded from its folder (engine-core does not depend on the lessons). */
async function lesson02Greedy(): Promise<GreedyGenerate> {
  const file = path.join(lessonDir(LESSONS[2]!), 'src', 'generate.ts');
  const mod = (await import(pathToFileURL(file).href)) as { greedyGenerate?: GreedyGenerate };
  if (typeof mod.greedyGenerate !== 'function') throw new Error(`${file} does not export greedyGenerate`);
  return mod.greedyGenerate;
}

/** Lesson 02's greedy tokens for a prompt: the plain forward, a fresh model, nothing cached. */
export async function plainForwardTokens(modelDir: string, device: Device, dtype: DType, promptIds: readonly number[], maxTokens: number, eosTokenIds: readonly number[]): Promise<number[]> {
  const greedy = await lesson02Greedy();
  const model = Qwen3Model.load(modelDir, { device, dtype });
  try {
    return greedy(model, promptIds, { maxTokens, eosTokenIds }).tokens;
  } finally {
    model.dispose();
    // Back to the driver: the engine built next sizes its KV pool from the memory left free.
    emptyCache(device);
  }
}

export interface EquivalenceResult {
  equal: boolean;
  line: string;
}

/** One line: do the engine's greedy tokens equal lesson 02's? */
export function compareTokens(engine: readonly number[], reference: readonly number[], dtype: DType): EquivalenceResult {
  const n = Math.max(engine.length, reference.length);
  let first = -1;
  for (let i = 0; i < n; i++) {
    if (engine[i] !== reference[i]) {
      first = i;
      break;
    }
  }
  if (first < 0) return { equal: true, line: `equivalence check: the engine's ${engine.length} greedy tokens for the first prompt equal lesson 02's plain forward (${dtype}): same tokens` };
  const why =
    dtype === 'f32'
      ? 'in f32 the two paths should agree: this is a bug'
      : `in ${dtype} a near tie between two logits can flip when the engine's kernels round differently (docs/equivalence.md)`;
  return {
    equal: false,
    line: `equivalence check: DIFFERENT from lesson 02's plain forward at token ${first + 1} of ${n} (engine ${engine[first] ?? 'none'}, lesson 02 ${reference[first] ?? 'none'}): ${why}`,
  };
}

// ------------------------------------------------------------ the demo

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** The command spec of lesson N's demo: the shared flags plus the lesson's own. */
export function lessonDemoSpec(recipe: Recipe): CommandSpec {
  return {
    command: `pnpm lesson ${recipe.lesson}`,
    summary: `Lesson ${pad2(recipe.lesson)} (${recipe.name}): ${recipe.summary}. Checks the engine against lesson 02, prints samples, runs a workload, records it on a GPU.`,
    flags: DEMO_FLAGS,
    notes: [
      `On the CPU (no GPU, or --device cpu) the default is a short workload and 1 run; on a GPU, the course workload and ${GPU_DEFAULT_REPEATS} runs.`,
      'Examples:',
      `  pnpm lesson ${recipe.lesson} --requests 4 --no-samples     a quick look`,
      `  pnpm lesson ${recipe.lesson} --workload long --time-budget 120`,
      `  pnpm lesson ${recipe.lesson} --workload shared-prefix     256 requests behind 8 shared 1,024-token prefixes (what lesson 13 caches)`,
    ],
  };
}

async function lessonMain(recipe: Recipe, opts: LessonDemoOptions, v: LessonDemoFlags): Promise<number> {
  const device = deviceFlag(v.device, parseDevice) ?? defaultDevice();
  const choice = chooseWorkload(device, v.workload, v.requests);
  const repeats = chooseRepeats(device, v.repeats);
  const timeBudgetS = positiveFlag('time-budget', v['time-budget']);
  const record = chooseRecord(device, v);
  const unrecordable = recipe.unrecordable?.();
  if (record && unrecordable) throw new UsageError(`not recordable: ${unrecordable} (pass --no-record)`);
  const work = choice.workload;
  const label = `Lesson ${pad2(recipe.lesson)}`;

  console.log(`${label} (${recipe.name}): ${recipe.summary}\n`);
  const { dir } = resolveModel({ model: v.model, device });
  const dtype: DType = defaultDtype(device, loadConfig(dir));
  const w = work.totals;
  const check = !v['no-check'];
  const samples = !v['no-samples'];
  console.log(
    [
      `plan: ${path.basename(dir)} on ${device} (${dtype})`,
      ...(check ? [`  - the equivalence check: ${SAMPLE_TOKENS} greedy tokens for the first sample prompt, from lesson 02's plain forward and from this engine`] : []),
      ...(samples ? [`  - ${SAMPLE_PROMPTS.length} sample generations (${SAMPLE_TOKENS} tokens each)`] : []),
      `  - a warm-up and a calibration (4 short requests), then the estimate`,
      `  - the ${work.name} workload (${choice.why}): ${w.requests} requests, ${w.promptTokens.toLocaleString('en-US')} prompt + ${w.outputTokens.toLocaleString('en-US')} output tokens, ` +
        `${repeats} run${repeats > 1 ? 's' : ''}${timeBudgetS ? `, at most ${timeBudgetS} s each` : ''}`,
      `  - ${record ? 'the record, in bench-results/' : 'no record (pass --record to write one)'}`,
      '',
    ].join('\n'),
  );

  let reference: number[] | undefined;
  const tokenizer = Tokenizer.fromDir(dir);
  const firstPrompt = tokenizer.encodeChat([{ role: 'user', content: SAMPLE_PROMPTS[0]! }], { addGenerationPrompt: true, enableThinking: false });
  if (check) {
    console.log(`equivalence check: lesson 02's plain forward, ${SAMPLE_TOKENS} greedy tokens...`);
    reference = await plainForwardTokens(dir, device, dtype, firstPrompt, SAMPLE_TOKENS, tokenizer.eosTokenIds);
  }

  const llm = LLM.create({ recipe, model: dir, device, dtype, tokenizer, engine: chooseEngineOptions(v) });
  let mismatch = false;
  try {
    const greedy = new SamplingParams({ temperature: 0, maxTokens: SAMPLE_TOKENS });
    let firstOut: number[] | undefined;
    if (samples) {
      const prompts = SAMPLE_PROMPTS.map((p) => tokenizer.encodeChat([{ role: 'user', content: p }], { addGenerationPrompt: true, enableThinking: false }));
      const outs = llm.generate(prompts, greedy);
      firstOut = outs[0]!.tokenIds;
      outs.forEach((o, i) => console.log(`> ${SAMPLE_PROMPTS[i]}\n  ${JSON.stringify(o.text)} (${o.tokenIds.length} tokens, ${o.finishReason})`));
    }
    if (reference) {
      firstOut ??= llm.generate([firstPrompt], greedy)[0]!.tokenIds;
      const eq = compareTokens(firstOut, reference, dtype);
      mismatch = !eq.equal;
      console.log(eq.line);
    }
    console.log();

    console.log('warm-up and calibration...');
    // engine-core/scripts/gpu-profile-attention.sh counts the forwards before the first run.
    const onProgress = profileStep(process.env.AIOS_PROFILE_STEP);
    const onRunStart = opts.onRunStart ? () => opts.onRunStart!(llm) : undefined;
    const rep = measureWorkload(llm, work, { repeats, ...(timeBudgetS !== undefined ? { timeBudgetS } : {}), ...(onProgress ? { onProgress } : {}), ...(onRunStart ? { onRunStart } : {}), progress: !v['no-progress'] });
    const result: BenchRunResult = rep.result;
    console.log(summarizeRun(result));
    if (repeats > 1) console.log(`repeats: ${describeRepeats(rep.repeats)}`);
    const st = result.stats;
    if (st.steps > 0 && device === 'cpu') console.log(`${st.steps} steps, ${((1000 * result.seconds) / st.steps).toFixed(2)} ms a step (the CPU backend computes each op as it is called)`);
    else if (st.steps > 0)
      console.log(
        `${st.steps} steps: the host spent ${st.enqueueSeconds.toFixed(2)} s queueing them (${((1000 * st.enqueueSeconds) / st.steps).toFixed(2)} ms a step), ` +
          `then ${st.syncSeconds.toFixed(2)} s waiting for the device at the sampled tokens (${((1000 * st.syncSeconds) / st.steps).toFixed(2)} ms a step)`,
      );
    if (result.stats.kvCache) {
      const kv = result.stats.kvCache;
      console.log(`KV cache at its peak: ${(kv.peakReservedBytes / 2 ** 20).toFixed(1)} MiB reserved for ${(kv.peakUsedBytes / 2 ** 20).toFixed(1)} MiB of tokens`);
      console.log(`KV cache on average over the steps: ${(kv.meanReservedBytes / 2 ** 20).toFixed(2)} MiB reserved for ${(kv.meanUsedBytes / 2 ** 20).toFixed(2)} MiB of tokens (${(100 * (kv.meanReservedBytes / kv.meanUsedBytes - 1)).toFixed(1)}% more)`);
    }
    for (const line of llm.parts.describe?.() ?? []) console.log(line);
    const prefix = describePrefixCache(result);
    if (prefix) console.log(prefix);
    if (result.stats.preemptions > 0) console.log(`preemptions: ${result.stats.preemptions} (a preempted sequence's cache is dropped and recomputed when blocks free up)`);
    opts.after?.(llm, result);

    if (recipe.lesson - 1 >= FIRST_WORKLOAD_LESSON) {
      const card = hardwareInfo(device).card;
      // The run the chart and the README show for the previous lesson: same card, workload and model, complete if one is.
      // Same engine options too, where its engine uses them: a run at 64 sequences a step is another experiment than one at 256.
      const prev = findLatestRecord({ kind: 'bench', lesson: recipe.lesson - 1, card, workload: work.name, model: modelInfo(llm).name, engine: llm.options, preferComplete: true });
      console.log(compareWithPrevious(prev, result, recipe.lesson - 1));
    } else console.log(`this run: ${result.outputTokPerS.toFixed(1)} tok/s (lesson ${pad2(recipe.lesson)} is the first engine lesson: lessons before it run no workload)`);

    if (record && result.outputTokens > 0) {
      const rec = benchRecordFor(llm, result, { repeats: rep.repeats, settings: { workloadChoice: choice.why } });
      if (rec.roofline) console.log(`roofline on this card: ${rec.roofline.outputTokPerS.toFixed(0)} tok/s (${((100 * result.outputTokPerS) / rec.roofline.outputTokPerS).toFixed(1)}% of it): ${rec.roofline.basis}`);
      console.log(`recorded ${writeRecord(rec)}`);
    } else if (!record) console.log('(not recorded: pass --record to write bench-results/)');
  } finally {
    llm.dispose();
  }
  if (mismatch && dtype === 'f32') {
    console.error(`${label}: the engine's greedy tokens differ from lesson 02's in f32 (see the equivalence check above)`);
    return 1;
  }
  return 0;
}

/**
 * Runs lesson N's demo with the command line's flags. Never throws: a bad flag is
 * reported with the usage (exit 2), a failure with its message (exit 1).
 */
export function runLessonDemo(recipe: Recipe, opts: LessonDemoOptions = {}): void {
  void runCli(lessonDemoSpec(recipe), (values) => lessonMain(recipe, opts, values));
}
