// `pnpm bench`: every lesson's engine on the same workload, one after another,
// one record per run (docs/benchmarking.md).
//
//   pnpm bench [--lesson N|all] [--workload course|throughput] [--time-budget S] [--requests N]
//              [--record | --no-record] [--device cpu|cuda|cuda:N] [--model DIR] [--no-progress]
//
// A lesson takes part when lessons/NN-*/src/recipe.ts exports `recipe: Recipe`.
// A lesson that fails is reported and skipped; the exit code is then 1.
// Records are written on a GPU (pass --record to keep a CPU run too, --no-record to keep none).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { type Device, defaultDevice, parseDevice } from '../backend.ts';
import { type BenchRunResult, benchRecordFor, runWorkload, summarizeRun } from '../bench/harness.ts';
import { writeRecord } from '../bench/records.ts';
import { WORKLOAD_NAMES, type Workload, firstRequests, isWorkloadName, workload as makeWorkload } from '../bench/workloads.ts';
import { LLM } from '../engine/llm.ts';
import type { Recipe } from '../engine/types.ts';
import { LESSONS, type LessonInfo, lessonDir } from './lessons.ts';

const USAGE = `usage: pnpm bench [--lesson N|all] [--workload ${WORKLOAD_NAMES.join('|')}] [--time-budget S] [--requests N]
                  [--record | --no-record] [--device cpu|cuda|cuda:N] [--model DIR] [--no-progress]`;

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

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        lesson: { type: 'string', default: 'all' },
        workload: { type: 'string', default: 'course' },
        'time-budget': { type: 'string' },
        requests: { type: 'string' },
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
    timeBudgetS = positive('--time-budget', values['time-budget'], false);
    if (values.record && values['no-record']) throw new UsageError('--record and --no-record together');
    device = values.device ? parseDevice(values.device) : defaultDevice();
    if (values.lesson === 'all') selected = LESSONS.filter((l) => recipeFile(l));
    else {
      const info = /^\d{1,2}$/.test(values.lesson) ? LESSONS.find((l) => l.number === Number(values.lesson)) : undefined;
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
        entry.file = writeRecord(rec);
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
