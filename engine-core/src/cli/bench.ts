// `pnpm bench`: every lesson's engine on the same workload, one after another,
// one record per run (docs/benchmarking.md).
//
//   pnpm bench [flags]                        (pnpm bench --help lists them)
//   pnpm bench serve [flags]                  lesson 15's serving benchmark (lessons/15-serving/src/bench-serve.ts)
//   pnpm bench merge [--model DIR] FILE...    the records of all N shards -> one record of the whole workload
//
// --shard K/N runs the K-th of N shards of the workload (bench/shards.ts says when
// shards add up) and records it under bench-results/shards/, which the chart
// does not read; `pnpm bench merge` checks the N records and writes the whole run's.
// A lesson takes part when lessons/NN-*/src/recipe.ts exports `recipe: Recipe`.
// A lesson that fails is reported and skipped; the exit code is then 1.
// Records are written on a GPU (pass --record to keep a CPU run too, --no-record to keep none).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { defaultDevice, parseDevice } from '../backend.ts';
import { type BenchRunResult, benchRecordFor, describePrefixCache, describeRepeats, measureWorkload, rooflineFor, summarizeRun } from '../bench/harness.ts';
import { ENGINE_RUN_FLAGS, chooseEngineOptions, chooseRecord, chooseRepeats, chooseWorkload } from '../bench/lesson-demo.ts';
import { type Qwen3Config, PRESETS, loadConfig, paramCount } from '../model/config.ts';
import { DEFAULT_MODELS } from '../model/resolve.ts';
import { type BenchRecord, recordEngineShape, recordProblem, resultsDir, writeRecord } from '../bench/records.ts';
import { mergeShardRecords } from '../bench/shards.ts';
import { type Workload, type WorkloadName, workload as makeWorkload, parseShard, shardOf } from '../bench/workloads.ts';
import { LLM } from '../engine/llm.ts';
import type { Recipe } from '../engine/types.ts';
import { type CommandSpec, type FlagValues, InputError, UsageError, deviceFlag, positiveFlag, runCli } from './args.ts';
import { LESSONS, type LessonInfo, lessonDir, parseLessonNumber } from './lessons.ts';

const BENCH_FLAGS = {
  lesson: { type: 'string', value: 'N|all', help: 'one lesson, or every lesson with an engine recipe (default all)' },
  ...ENGINE_RUN_FLAGS,
  shard: { type: 'string', value: 'K/N', help: 'run the K-th of N shards of the workload (recorded under bench-results/shards/; pnpm bench merge adds them up)' },
} as const;

const BENCH_SPEC: CommandSpec<typeof BENCH_FLAGS> = {
  command: 'pnpm bench',
  summary: "Every lesson's engine (03 on) on the same workload, one after another, one record per lesson. It says what it will run before it starts.",
  flags: BENCH_FLAGS,
  notes: [
    'With no flags: every lesson with a recipe; on a GPU the course workload 3 times each, on the CPU the short CPU default once each.',
    'pnpm bench merge [--model DIR] FILE...   the records of all N shards of one run -> the record of the whole workload',
    'pnpm bench serve [flags]                 the serving benchmark: requests at given rates through lesson 15\'s HTTP server (pnpm bench serve --help)',
  ],
};

const MERGE_SPEC: CommandSpec<{ model: { type: 'string'; value: string; help: string } }> = {
  command: 'pnpm bench merge',
  summary: 'The records of all N shards of one run (bench-results/shards/*.json) -> one record of the whole workload, in bench-results/.',
  flags: { model: { type: 'string', value: 'DIR', help: 'the model folder, when the records name a model whose config is not a preset (for the roofline)' } },
  positionals: 'FILE...',
};

/** lessons/NN-*\/src/recipe.ts, or undefined while the lesson has none. */
export function recipeFile(info: LessonInfo): string | undefined {
  const file = path.join(lessonDir(info), 'src', 'recipe.ts');
  return existsSync(file) ? file : undefined;
}

function isRecipe(v: unknown): v is Recipe {
  const r = v as Partial<Recipe> | undefined;
  return typeof r === 'object' && r !== null && typeof r.name === 'string' && typeof r.lesson === 'number' && typeof r.build === 'function';
}

async function loadRecipe(info: LessonInfo, file: string): Promise<Recipe> {
  const mod = (await import(pathToFileURL(file).href)) as { recipe?: unknown };
  if (!isRecipe(mod.recipe)) throw new Error(`${path.relative(process.cwd(), file)} does not export \`recipe: Recipe\` (name, lesson, build)`);
  if (mod.recipe.lesson !== info.number) throw new Error(`${path.relative(process.cwd(), file)}: its recipe says lesson ${mod.recipe.lesson}, its folder is lesson ${info.number}`);
  return mod.recipe;
}

interface Ran {
  lesson: number;
  recipe: string;
  result?: BenchRunResult;
  error?: string;
  file?: string;
}

/**
 * The model's config for a record: --model DIR's config.json, else the preset
 * of a default random model by its name; checked against the record's parameter count.
 */
function recordConfig(model: BenchRecord['model'], dir: string | undefined): Qwen3Config | undefined {
  let cfg: Qwen3Config | undefined;
  if (dir) cfg = loadConfig(dir);
  else {
    const spec = Object.values(DEFAULT_MODELS).find((m) => m.name === model.name);
    cfg = spec ? PRESETS[spec.preset] : undefined;
  }
  if (cfg && paramCount(cfg) !== model.params) throw new Error(`the config ${dir ? `in ${dir}` : `of ${model.name}`} has ${paramCount(cfg)} parameters; the records' model has ${model.params}`);
  return cfg;
}

/** `pnpm bench merge [--model DIR] FILE...`: the shards' records -> the whole run's record. */
function merge(files: string[], modelDir: string | undefined): number {
  if (files.length === 0) throw new UsageError('name the shard records to merge (bench-results/shards/*.json)');
  let merged: BenchRecord;
  try {
    const inputs = files.map((file) => {
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        throw new Error(`${file}: ${(e as Error).message}`);
      }
      const problem = recordProblem(json);
      if (problem) throw new Error(`${file}: not a results record (${problem})`);
      return { file: path.basename(file), record: json as BenchRecord };
    });
    merged = mergeShardRecords(inputs);
    // Shards recorded where the card's lesson-00 record was not at hand carry no
    // roofline: compute the whole workload's here, as the harness would have.
    if (!merged.roofline) {
      const cfg = recordConfig(merged.model, modelDir);
      const roof = cfg && rooflineFor(cfg, makeWorkload(merged.workload as WorkloadName), { shape: recordEngineShape(merged), card: merged.hardware.card, ...(merged.gpus ? { gpus: merged.gpus } : {}) });
      if (roof) merged.roofline = { ...roof };
      else console.log(`(no roofline: ${cfg ? `no lesson-00 record for ${merged.hardware.card}` : `the config of ${merged.model.name} is unknown here; pass --model DIR`})`);
    }
  } catch (e) {
    // The files named on the command line are the input: what is wrong with them is not a bug.
    throw new InputError((e as Error).message);
  }
  const shards = merged.settings.shards as { index: number; requests: number; outputTokens: number; seconds: number; outputTokPerS: number }[];
  for (const s of shards) console.log(`  shard ${s.index}/${shards.length}: ${s.requests} requests, ${s.outputTokens} output tokens in ${s.seconds.toFixed(1)} s (${s.outputTokPerS.toFixed(1)} tok/s)`);
  const r = merged.results;
  console.log(
    `lesson ${String(merged.lesson).padStart(2, '0')} ${merged.workload} on ${merged.hardware.card}: ${r.outputTokPerS.toFixed(1)} output tok/s ` +
      `(${r.outputTokens} tokens in ${r.seconds.toFixed(1)} s summed over ${shards.length} shards; prefill ${r.prefillTokPerS.toFixed(0)} tok/s, decode ${r.decodeTokPerS.toFixed(1)} tok/s)`,
  );
  if (merged.roofline) console.log(`roofline ${merged.roofline.outputTokPerS.toFixed(0)} tok/s (${((100 * r.outputTokPerS) / merged.roofline.outputTokPerS).toFixed(1)}% of it)`);
  console.log(`recorded ${path.relative(process.cwd(), writeRecord(merged, resultsDir()))}`);
  return 0;
}

async function main(values: FlagValues<typeof BENCH_FLAGS>): Promise<number> {
  const device = deviceFlag(values.device, parseDevice) ?? defaultDevice();
  if (values.requests !== undefined && values.shard !== undefined) throw new UsageError('--requests and --shard together: a shard is already a part of the workload');
  const choice = chooseWorkload(device, values.workload, values.requests);
  let workload: Workload = choice.workload;
  if (values.shard !== undefined) {
    let shard;
    try {
      shard = parseShard(values.shard);
      workload = shardOf(makeWorkload((values.workload ?? 'course') as WorkloadName), shard.index, shard.count);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const repeats = chooseRepeats(device, values.repeats);
  const timeBudgetS = positiveFlag('time-budget', values['time-budget']);
  const record = chooseRecord(device, values);
  let selected: LessonInfo[];
  const lessonArg = values.lesson ?? 'all';
  if (lessonArg === 'all') selected = LESSONS.filter((l) => recipeFile(l));
  else {
    const info = parseLessonNumber(lessonArg);
    if (!info) throw new UsageError(`--lesson must be a number from 0 to ${LESSONS.length - 1} or all, got "${lessonArg}"`);
    if (!recipeFile(info)) {
      const ready = LESSONS.filter((l) => recipeFile(l)).map((l) => l.number);
      throw new UsageError(
        `lesson ${info.number} (${info.title}) has no engine recipe (lessons/${path.basename(lessonDir(info))}/src/recipe.ts). ` +
          `Lessons with one: ${ready.join(', ') || 'none yet'}. (Lessons 00-02 come before the engine: run them with pnpm lesson N.)`,
      );
    }
    selected = [info];
  }
  if (selected.length === 0) {
    console.error('pnpm bench: no lesson has an engine recipe yet (lessons/NN-*/src/recipe.ts exporting `recipe`; the engine starts with lesson 03). Nothing to run.');
    return 2;
  }

  const w = workload.totals;
  console.log(
    `pnpm bench: ${selected.length} lesson(s) [${selected.map((l) => String(l.number).padStart(2, '0')).join(', ')}] on ${device}, ` +
      `workload ${workload.name}${values.shard === undefined ? ` (${choice.why})` : ''}: ${w.requests} requests, ${w.promptTokens.toLocaleString('en-US')} prompt + ${w.outputTokens.toLocaleString('en-US')} output tokens, ` +
      `${repeats} run${repeats > 1 ? 's' : ''} per lesson${timeBudgetS !== undefined ? `, at most ${timeBudgetS} s each` : ''}${record ? ', recorded in bench-results/' : ' (not recorded: --record to keep them)'}.` +
      ` Each lesson states its estimate after a short calibration. (pnpm bench --help for the options.)`,
  );

  const ran: Ran[] = [];
  let previous: Ran | undefined;
  for (const info of selected) {
    const label = `lesson ${String(info.number).padStart(2, '0')}`;
    let llm: LLM | undefined;
    const entry: Ran = { lesson: info.number, recipe: info.slug };
    try {
      const recipe = await loadRecipe(info, recipeFile(info)!);
      entry.recipe = recipe.name;
      const tp = chooseEngineOptions(values).tensorParallelSize ?? 1;
      if (tp > 1 && !recipe.tensorParallel) {
        console.log(`\n${label} ${recipe.name}: skipped (--tp ${tp}: this lesson runs on one device; tensor parallelism starts with lesson 14)`);
        continue;
      }
      const unrecordable = recipe.unrecordable?.();
      if (record && unrecordable) throw new UsageError(`${label}: not recordable: ${unrecordable} (pass --no-record)`);
      console.log(`\n${label} ${recipe.name}: ${recipe.summary}`);
      llm = LLM.create({ recipe, device, engine: chooseEngineOptions(values), ...(values.model ? { model: values.model } : {}) });
      const rep = measureWorkload(llm, workload, { repeats, label, ...(timeBudgetS !== undefined ? { timeBudgetS } : {}), progress: !values['no-progress'] });
      const result: BenchRunResult = rep.result;
      entry.result = result;
      const times = previous?.result ? ` = ${(result.outputTokPerS / previous.result.outputTokPerS).toFixed(2)}x lesson ${String(previous.lesson).padStart(2, '0')}` : '';
      console.log(`${label} ${summarizeRun(result)}${times}`);
      if (repeats > 1) console.log(`${label} ${describeRepeats(rep.repeats)}`);
      const prefix = describePrefixCache(result);
      if (prefix) console.log(`${label} ${prefix}`);
      if (record) {
        const rec = benchRecordFor(llm, result, { repeats: rep.repeats, settings: { workloadChoice: values.shard === undefined ? choice.why : `--shard ${values.shard}` } });
        if (rec.roofline) console.log(`${label} roofline ${rec.roofline.outputTokPerS.toFixed(0)} tok/s on this card (${((100 * result.outputTokPerS) / rec.roofline.outputTokPerS).toFixed(1)}% of it): ${rec.roofline.basis}`);
        entry.file = writeRecord(rec, workload.shard ? path.join(resultsDir(), 'shards') : resultsDir());
        console.log(`${label} recorded ${path.relative(process.cwd(), entry.file)}`);
      }
      previous = entry;
    } catch (e) {
      entry.error = e instanceof Error ? e.message : String(e);
      console.error(`${label} FAILED: ${values.verbose && e instanceof Error ? (e.stack ?? e.message) : entry.error}`);
    } finally {
      try {
        llm?.dispose();
      } catch (e) {
        console.error(`${label}: dispose failed: ${(e as Error).message}`);
      }
    }
    ran.push(entry);
  }

  console.log(`\nsummary (${workload.name}, ${device}):`);
  let prev: BenchRunResult | undefined;
  for (const r of ran) {
    const head = `  ${String(r.lesson).padStart(2, '0')} ${r.recipe.padEnd(22)}`;
    if (!r.result) {
      console.log(`${head} FAILED: ${r.error}`);
      continue;
    }
    const x = prev ? ` ${(r.result.outputTokPerS / prev.outputTokPerS).toFixed(2)}x` : '';
    console.log(`${head} ${r.result.outputTokPerS.toFixed(1).padStart(10)} tok/s${x}${r.result.partial ? ` (partial: ${r.result.finishedRequests}/${r.result.requests} requests)` : ''}`);
    prev = r.result;
  }
  const failed = ran.filter((r) => r.error);
  if (failed.length) {
    console.error(`\npnpm bench: ${failed.length} of ${ran.length} lesson(s) failed: ${failed.map((r) => r.lesson).join(', ')}${values.verbose ? '' : ' (--verbose for the stack traces)'}`);
    return 1;
  }
  return 0;
}

if (process.argv[2] === 'serve') {
  // The serving benchmark lives with lesson 15's server; loaded by path, as the lessons' recipes are.
  const serving = LESSONS.find((l) => l.slug === 'serving')!;
  const mod = (await import(pathToFileURL(path.join(lessonDir(serving), 'src', 'bench-serve.ts')).href)) as { runBenchServeCli: (argv: readonly string[]) => Promise<number> };
  await mod.runBenchServeCli(process.argv.slice(3));
} else if (process.argv[2] === 'merge') void runCli(MERGE_SPEC, (values, files) => merge(files, values.model), { argv: process.argv.slice(3) });
else void runCli(BENCH_SPEC, main);
