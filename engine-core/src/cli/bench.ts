// `pnpm bench`: every lesson's engine on the same workload, one after another,
// one record per run (docs/benchmarking.md).
//
//   pnpm bench [--lesson N|all] [--workload course|throughput] [--time-budget S] [--requests N | --shard K/N]
//              [--record | --no-record] [--device cpu|cuda|cuda:N] [--model DIR] [--no-progress]
//   pnpm bench merge [--model DIR] FILE...   the records of all N shards -> one record of the whole workload
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
import { parseArgs } from 'node:util';

import { type Device, defaultDevice, parseDevice } from '../backend.ts';
import { type BenchRunResult, benchRecordFor, runWorkload, summarizeRun } from '../bench/harness.ts';
import { rooflineFor } from '../bench/harness.ts';
import { recordEngineShape } from '../bench/records.ts';
import { type Qwen3Config, PRESETS, loadConfig, paramCount } from '../model/config.ts';
import { DEFAULT_MODELS } from '../model/resolve.ts';
import { type BenchRecord, recordProblem, resultsDir, writeRecord } from '../bench/records.ts';
import { mergeShardRecords } from '../bench/shards.ts';
import { WORKLOAD_NAMES, type Workload, type WorkloadName, firstRequests, isWorkloadName, workload as makeWorkload, parseShard, shardOf } from '../bench/workloads.ts';
import { LLM } from '../engine/llm.ts';
import type { Recipe } from '../engine/types.ts';
import { LESSONS, type LessonInfo, lessonDir, parseLessonNumber } from './lessons.ts';

const USAGE = `usage: pnpm bench [--lesson N|all] [--workload ${WORKLOAD_NAMES.join('|')}] [--time-budget S] [--requests N | --shard K/N]
                  [--record | --no-record] [--device cpu|cuda|cuda:N] [--model DIR] [--no-progress]
       pnpm bench merge [--model DIR] FILE...   (the records of all N shards of one run)`;

class UsageError extends Error {}

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

function positive(name: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0) || (integer && !Number.isInteger(n))) throw new UsageError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got "${v}"`);
  return n;
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
function merge(argv: string[]): number {
  let files: string[], modelDir: string | undefined;
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { model: { type: 'string' } }, allowPositionals: true });
    files = positionals;
    modelDir = values.model;
  } catch (e) {
    console.error(`pnpm bench merge: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (files.length === 0) {
    console.error(`pnpm bench merge: name the shard records to merge (bench-results/shards/*.json)\n${USAGE}`);
    return 2;
  }
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
      const roof = cfg && rooflineFor(cfg, makeWorkload(merged.workload as WorkloadName), { shape: recordEngineShape(merged), card: merged.hardware.card });
      if (roof) merged.roofline = { ...roof };
      else console.log(`(no roofline: ${cfg ? `no lesson-00 record for ${merged.hardware.card}` : `the config of ${merged.model.name} is unknown here; pass --model DIR`})`);
    }
  } catch (e) {
    console.error(`pnpm bench merge: ${(e as Error).message}`);
    return 2;
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

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'merge') return merge(argv.slice(1));
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        lesson: { type: 'string', default: 'all' },
        workload: { type: 'string', default: 'course' },
        'time-budget': { type: 'string' },
        requests: { type: 'string' },
        shard: { type: 'string' },
        record: { type: 'boolean' },
        'no-record': { type: 'boolean', default: false },
        device: { type: 'string' },
        model: { type: 'string' },
        'no-progress': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    console.error(`pnpm bench: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }

  let selected: LessonInfo[];
  let workload: Workload;
  let timeBudgetS: number | undefined;
  let device: Device;
  try {
    if (!isWorkloadName(values.workload)) throw new UsageError(`unknown workload "${values.workload}" (expected ${WORKLOAD_NAMES.join(' or ')})`);
    workload = makeWorkload(values.workload);
    const requests = positive('--requests', values.requests, true);
    if (requests !== undefined) workload = firstRequests(workload, requests);
    if (values.shard !== undefined) {
      if (requests !== undefined) throw new UsageError('--requests and --shard together: a shard is already a part of the workload');
      const { index, count } = parseShard(values.shard);
      workload = shardOf(workload, index, count);
    }
    timeBudgetS = positive('--time-budget', values['time-budget'], false);
    if (values.record && values['no-record']) throw new UsageError('--record and --no-record together');
    device = values.device ? parseDevice(values.device) : defaultDevice();
    if (values.lesson === 'all') selected = LESSONS.filter((l) => recipeFile(l));
    else {
      const info = parseLessonNumber(values.lesson);
      if (!info) throw new UsageError(`no lesson "${values.lesson}" (expected a number from 0 to ${LESSONS.length - 1}, or all)`);
      if (!recipeFile(info)) {
        const ready = LESSONS.filter((l) => recipeFile(l)).map((l) => l.number);
        console.error(
          `pnpm bench: lesson ${info.number} (${info.title}) has no engine recipe (lessons/${path.basename(lessonDir(info))}/src/recipe.ts). ` +
            `Lessons with one: ${ready.join(', ') || 'none yet'}. (Lessons 00-02 come before the engine: run them with pnpm lesson N.)`,
        );
        return 2;
      }
      selected = [info];
    }
  } catch (e) {
    console.error(`pnpm bench: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (selected.length === 0) {
    console.error('pnpm bench: no lesson has an engine recipe yet (lessons/NN-*/src/recipe.ts exporting `recipe`; the engine starts with lesson 03). Nothing to run.');
    return 2;
  }
  const record = values['no-record'] ? false : (values.record ?? device !== 'cpu');

  const w = workload.totals;
  console.log(
    `pnpm bench: ${selected.length} lesson(s) [${selected.map((l) => String(l.number).padStart(2, '0')).join(', ')}] on ${device}, ` +
      `workload ${workload.name}: ${w.requests} requests, ${w.promptTokens.toLocaleString('en-US')} prompt + ${w.outputTokens.toLocaleString('en-US')} output tokens` +
      `${timeBudgetS !== undefined ? `, time budget ${timeBudgetS} s per lesson` : ''}${record ? '' : ' (not recorded)'}`,
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
      console.log(`\n${label} ${recipe.name}: ${recipe.summary}`);
      llm = LLM.create({ recipe, device, ...(values.model ? { model: values.model } : {}) });
      const result = runWorkload(llm, workload, { ...(timeBudgetS !== undefined ? { timeBudgetS } : {}), progress: !values['no-progress'] });
      entry.result = result;
      const times = previous?.result ? ` = ${(result.outputTokPerS / previous.result.outputTokPerS).toFixed(2)}x lesson ${String(previous.lesson).padStart(2, '0')}` : '';
      console.log(`${label} ${summarizeRun(result)}${times}`);
      if (record) {
        const rec = benchRecordFor(llm, result);
        if (rec.roofline) console.log(`${label} roofline ${rec.roofline.outputTokPerS.toFixed(0)} tok/s on this card (${((100 * result.outputTokPerS) / rec.roofline.outputTokPerS).toFixed(1)}% of it): ${rec.roofline.basis}`);
        entry.file = writeRecord(rec, workload.shard ? path.join(resultsDir(), 'shards') : resultsDir());
        console.log(`${label} recorded ${path.relative(process.cwd(), entry.file)}`);
      }
      previous = entry;
    } catch (e) {
      entry.error = e instanceof Error ? e.message : String(e);
      console.error(`${label} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
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
    console.error(`\npnpm bench: ${failed.length} of ${ran.length} lesson(s) failed: ${failed.map((r) => r.lesson).join(', ')}`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);
