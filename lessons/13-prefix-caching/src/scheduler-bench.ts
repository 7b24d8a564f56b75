// The host cost of a step, without a model: lesson 12's scheduler (lesson 08's,
// over lesson 06's block manager) and lesson 13's (prefix caching), driven
// through the throughput workload (256 requests, prompts and outputs of 100 to
// 1,024 tokens) exactly as the engine drives them -- schedule, the plan's
// cachedTokens advance, one made-up token per sampling sequence, finished(),
// the per-step KV accounting -- with no forward and no sampler. What it times
// is what the engine spends outside runner.run and the sampler's wait.
//
//   npx tsx lessons/13-prefix-caching/src/scheduler-bench.ts [--reps N] [--blocks N] [--only 12|13]
//
// --blocks defaults to 72,138: the pool lesson 13's throughput run had on an
// H200 (16-token blocks), so the free lists and the cache are as big as there.
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { type StepPlan, samplesAt } from '@aios/engine-core/engine/types.ts';
import { throughputWorkload } from '@aios/engine-core/bench/workloads.ts';
import { BlockManager } from '@aios/lesson-06-paged-kv-cache';
import type { PagedScheduler } from '@aios/lesson-07-batching';
import { ContinuousBatchingScheduler } from '@aios/lesson-08-continuous-batching';

import { PrefixCachingBlockManager } from './prefix-block-manager.ts';
import { PrefixCachingScheduler } from './prefix-scheduler.ts';

interface Built {
  scheduler: PagedScheduler;
  blocks: BlockManager;
}

const limits = { maxNumSeqs: 256, maxNumBatchedTokens: 16384 };
const blockSize = 16;

const builders: Record<'lesson 12' | 'lesson 13', (numBlocks: number) => Built> = {
  'lesson 12': (n) => {
    const blocks = new BlockManager(n, blockSize);
    return { blocks, scheduler: new ContinuousBatchingScheduler(blocks, limits) };
  },
  'lesson 13': (n) => {
    const blocks = new PrefixCachingBlockManager(n, blockSize);
    return { blocks, scheduler: new PrefixCachingScheduler(blocks, limits) };
  },
};

interface RunResult {
  steps: number;
  /** Microseconds per step in schedule(). */
  schedule: number;
  /** Microseconds per step in the rest: token appends, finished(), the KV accounting. */
  rest: number;
  /** Microseconds per decode step on the step's path (schedule + rest), and per prefill step. */
  decode: number;
  prefill: number;
  /** Microseconds per step in scheduler.overlap(): host work the engine runs while the device computes the step. */
  overlap: number;
  /** Microseconds per step of garbage collection pauses during the run (on the engine they land in whatever runs then, mostly runner.run). */
  gc: number;
  /** Microseconds per step of the process's CPU time (user + system): unlike the wall times, not inflated while other processes hold the cores. */
  cpu: number;
  /** Each step's sequence ids and token counts, to check both schedulers planned the same steps. */
  shape: string[];
}

/** One pass over the workload, as Engine.step does it, minus the forward and the sampler. */
/** Made once: generating it allocates ~280,000 ids, whose collection would land in the timed steps. */
const workload = throughputWorkload();

/** Garbage collection pauses, in milliseconds, summed as they are reported. */
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

/** Lets the observer's callbacks for the pauses so far run. */
const settle = () => new Promise<void>((r) => setTimeout(r, 20));

function runOnce(built: Built, record = false): RunResult {
  const { scheduler, blocks } = built;
  const seqs = workload.requests.map((r) => new Sequence(r.promptIds, r.params));
  const base = seqs[0]!.id;
  for (const s of seqs) scheduler.add(s);
  let token = 12345;
  let tSchedule = 0, tRest = 0, tOverlap = 0, steps = 0, kvSum = 0, tDecode = 0, decodeSteps = 0;
  const shape: string[] = [];
  const cpu0 = process.cpuUsage();
  while (scheduler.pending > 0) {
    const t0 = performance.now();
    const plan: (StepPlan & { preempted?: Sequence[] }) | undefined = scheduler.schedule();
    const t1 = performance.now();
    if (!plan) throw new Error('the scheduler has pending sequences but scheduled none');
    // Here the engine queues the forward (runner.run), then calls overlap() while the device computes.
    scheduler.overlap?.();
    const t1b = performance.now();
    for (const s of plan.preempted ?? []) s.preemptions++;
    const sampled = plan.sequences.filter((_, i) => samplesAt(plan, i));
    plan.sequences.forEach((s, i) => (s.cachedTokens += plan.newTokens[i]!));
    for (const seq of sampled) {
      token = (token * 1103515245 + 12345) % 10000; // any id: nothing reads it but the hashes
      seq.append(token);
      if (seq.outputIds.length >= seq.params.maxTokens) {
        seq.finish('length');
        scheduler.finished(seq);
      }
    }
    kvSum += scheduler.reservedBlocks() + blocks.usedTokens; // the engine's per-step kvStats
    const t2 = performance.now();
    tSchedule += t1 - t0;
    tOverlap += t1b - t1;
    tRest += t2 - t1b;
    if (plan.phase === 'decode') {
      tDecode += t1 - t0 + (t2 - t1b);
      decodeSteps++;
    }
    steps++;
    if (record) shape.push(`${plan.phase}:${plan.sequences.map((s, i) => `${s.id - base}+${plan.newTokens[i]}/${plan.blockTables![i]!.length}`).join(',')}`);
  }
  const cpu = process.cpuUsage(cpu0);
  if (kvSum <= 0) throw new Error('no KV accounted');
  return { steps, schedule: (tSchedule * 1000) / steps, rest: (tRest * 1000) / steps, overlap: (tOverlap * 1000) / steps, decode: (tDecode * 1000) / decodeSteps, prefill: ((tSchedule + tRest - tDecode) * 1000) / (steps - decodeSteps), gc: 0, cpu: (cpu.user + cpu.system) / steps, shape };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { reps: { type: 'string', default: '7' }, blocks: { type: 'string', default: '72138' }, only: { type: 'string' } } });
  const only = values.only === undefined ? undefined : `lesson ${values.only}`;
  const reps = Number(values.reps), numBlocks = Number(values.blocks);
  if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`--reps must be a positive integer, got ${values.reps}`);
  if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new RangeError(`--blocks must be a positive integer, got ${values.blocks}`);
  const names = Object.keys(builders) as (keyof typeof builders)[];
  const results = new Map<string, RunResult[]>(names.map((n) => [n, []]));
  // A fresh scheduler per run (a warm prefix cache would change lesson 13's work); one warm-up each,
  // then the two interleaved so that a busy neighbour on the machine slows both alike.
  const shapes = names.filter((n) => only === undefined || n === only).map((n) => runOnce(builders[n](numBlocks), true).shape);
  for (let r = 0; r < reps; r++)
    for (const n of names) {
      if (only !== undefined && n !== only) continue;
      const built = builders[n](numBlocks);
      await settle();
      const gc0 = gcMs;
      const res = runOnce(built);
      await settle();
      res.gc = ((gcMs - gc0) * 1000) / res.steps;
      results.get(n)!.push(res);
    }
  const [a, b] = shapes.length === 2 ? shapes : [shapes[0], shapes[0]];
  const same = a!.length === b!.length && a!.every((s, i) => s === b![i]);
  console.log(`throughput workload, ${numBlocks} blocks of ${blockSize}, ${reps} runs each (median), host only (no model)`);
  for (const n of names) {
    const rs = results.get(n)!;
    if (rs.length === 0) continue;
    const sch = median(rs.map((r) => r.schedule)), rest = median(rs.map((r) => r.rest)), tot = median(rs.map((r) => r.schedule + r.rest));
    const gc = median(rs.map((r) => r.gc)), cpu = median(rs.map((r) => r.cpu)), ov = median(rs.map((r) => r.overlap));
    const dec = median(rs.map((r) => r.decode)), pre = median(rs.map((r) => r.prefill));
    const best = Math.min(...rs.map((r) => r.schedule + r.rest));
    console.log(`  ${n}: ${rs[0]!.steps} steps; host time on the step's path: median schedule ${sch.toFixed(1)} + rest ${rest.toFixed(1)} = ${tot.toFixed(1)} us/step (decode steps ${dec.toFixed(1)}, prefill steps ${pre.toFixed(0)}); best run ${best.toFixed(1)} us/step; overlapped with the device ${ov.toFixed(1)} us/step; GC pauses ${gc.toFixed(1)} us/step; CPU time (all of it) ${cpu.toFixed(1)} us/step (runs: ${rs.map((r) => (r.schedule + r.rest).toFixed(1)).join(' ')})`);
  }
  if (shapes.length === 2) console.log(`  plans: ${same ? 'the same steps (sequences, order, token counts, block-table widths) under both' : 'DIFFERENT steps under the two schedulers'}`);
}

await main();
