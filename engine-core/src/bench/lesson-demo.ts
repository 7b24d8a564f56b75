// What `pnpm lesson N` runs for an engine lesson (03 on): a few real
// generations, then a workload through the harness, the record, and the
// comparison with the previous lesson's record on the same card.
import { parseArgs } from 'node:util';

import { defaultDevice, native, parseDevice } from '../backend.ts';
import { LLM } from '../engine/llm.ts';
import { SamplingParams } from '../engine/sampling-params.ts';
import type { GenerateProgress, Recipe } from '../engine/types.ts';
import { type BenchRunResult, benchRecordFor, compareWithPrevious, findLatestRecord, modelInfo, runWorkload, summarizeRun } from './harness.ts';
import { hardwareInfo, writeRecord } from './records.ts';
import { WORKLOAD_NAMES, firstRequests, isWorkloadName, workload as makeWorkload } from './workloads.ts';

export interface LessonDemoOptions {
  /** Lesson-specific lines after the run (copy counts, pool sizes...). */
  after?: (llm: LLM, result: BenchRunResult) => void;
}

const USAGE = `pnpm lesson N [--model DIR] [--device cpu|cuda] [--workload ${WORKLOAD_NAMES.join('|')}] [--requests N] [--time-budget S] [--record|--no-record] [--no-samples]
  [--max-num-seqs N] [--max-num-batched-tokens N] [--gpu-memory-utilization F]   (engine limits; the batched lessons 07 on use them)`;

const SAMPLE_PROMPTS = ['Write a haiku about memory bandwidth.', 'What is 17 * 23?', 'Name three uses of a GPU.'];

/**
 * AIOS_PROFILE_STEP=N: the profiler captures step N of the timed run only
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

export function runLessonDemo(recipe: Recipe, opts: LessonDemoOptions = {}): void {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      device: { type: 'string' },
      workload: { type: 'string', default: 'course' },
      requests: { type: 'string' },
      'time-budget': { type: 'string' },
      record: { type: 'boolean' },
      'no-record': { type: 'boolean' },
      'no-samples': { type: 'boolean' },
      'max-num-seqs': { type: 'string' },
      'max-num-batched-tokens': { type: 'string' },
      'gpu-memory-utilization': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!isWorkloadName(values.workload)) throw new Error(`--workload must be one of ${WORKLOAD_NAMES.join(', ')}, got "${values.workload}"`);
  let work = makeWorkload(values.workload);
  if (values.requests !== undefined) work = firstRequests(work, Number(values.requests));
  const timeBudgetS = values['time-budget'] !== undefined ? Number(values['time-budget']) : undefined;
  if (timeBudgetS !== undefined && !(timeBudgetS > 0)) throw new Error(`--time-budget must be a positive number of seconds, got ${values['time-budget']}`);
  const device = values.device ? parseDevice(values.device) : defaultDevice();

  console.log(`Lesson ${String(recipe.lesson).padStart(2, '0')} (${recipe.name}): ${recipe.summary}\n`);
  const num = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${flag} must be a number, got "${v}"`);
    return n;
  };
  const engine = {
    maxNumSeqs: num('max-num-seqs', values['max-num-seqs']),
    maxNumBatchedTokens: num('max-num-batched-tokens', values['max-num-batched-tokens']),
    gpuMemoryUtilization: num('gpu-memory-utilization', values['gpu-memory-utilization']),
  };
  const llm = LLM.create({ recipe, model: values.model, device, engine });
  try {
    console.log(`model ${llm.modelDir} on ${device} (${llm.dtype})\n`);
    if (!values['no-samples']) {
      const prompts = SAMPLE_PROMPTS.map((p) => llm.tokenizer.encodeChat([{ role: 'user', content: p }], { addGenerationPrompt: true, enableThinking: false }));
      const outs = llm.generate(prompts, new SamplingParams({ temperature: 0, maxTokens: 24 }));
      outs.forEach((o, i) => console.log(`> ${SAMPLE_PROMPTS[i]}\n  ${JSON.stringify(o.text)} (${o.tokenIds.length} tokens, ${o.finishReason})`));
      console.log();
    }

    const w = work.totals;
    console.log(`workload ${work.name}: ${w.requests} requests, ${w.promptTokens} prompt tokens, ${w.outputTokens} output tokens${timeBudgetS ? `, time budget ${timeBudgetS} s` : ''}`);
    const result = runWorkload(llm, work, { timeBudgetS, onProgress: profileStep(process.env.AIOS_PROFILE_STEP) });
    console.log(summarizeRun(result));
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
    opts.after?.(llm, result);

    const card = hardwareInfo(device).card;
    // The run the chart and the README show for the previous lesson: same card, workload and model, complete if one is.
    const prev = findLatestRecord({ kind: 'bench', lesson: recipe.lesson - 1, card, workload: work.name, model: modelInfo(llm).name, preferComplete: true });
    console.log(compareWithPrevious(prev, result, recipe.lesson - 1));

    const record = values['no-record'] ? false : (values.record ?? device !== 'cpu');
    if (record && result.outputTokens > 0) {
      const rec = benchRecordFor(llm, result);
      if (rec.roofline) console.log(`roofline on this card: ${rec.roofline.outputTokPerS.toFixed(0)} tok/s (${(100 * result.outputTokPerS / rec.roofline.outputTokPerS).toFixed(1)}% of it): ${rec.roofline.basis}`);
      console.log(`recorded ${writeRecord(rec)}`);
    } else if (!record) console.log('(not recorded: pass --record to write bench-results/)');
  } finally {
    llm.dispose();
  }
}
