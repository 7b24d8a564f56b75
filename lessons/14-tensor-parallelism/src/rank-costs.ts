// Threads or processes for the ranks? What each costs, measured on this machine:
// starting a rank (to the point where it has loaded the engine and the addon),
// and handing it one step's plan and hearing back (the once-per-step cost every
// decode step pays): a SharedArrayBuffer and Atomics between threads, against
// Node's IPC channel (JSON over a pipe) between processes.
//
//   tsx lessons/14-tensor-parallelism/src/rank-costs.ts [--steps 2000] [--seqs 64]
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { isMainThread, workerData } from 'node:worker_threads';

import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { StepPlan } from '@aios/engine-core/engine/types.ts';

import { CTRL, GroupMemory, type GroupShape } from './group-memory.ts';
import { PlanReader, PlanWriter, encodePlan, planCapacity } from './plan-channel.ts';
import { startRank } from './rank-group.ts';

const ACK = CTRL.scratch; // the control slot the echo rank bumps after reading each plan

/** A decode step of `seqs` sequences at about 1,000 tokens of context each. */
function decodePlan(seqs: number): StepPlan {
  const sequences = Array.from({ length: seqs }, (_, i) => {
    const s = new Sequence(Array.from({ length: 1000 + i }, (_, t) => (t * 31 + i) % 150_000), new SamplingParams());
    s.cachedTokens = s.length - 1;
    return s;
  });
  return { sequences, newTokens: sequences.map(() => 1), phase: 'decode', blockTables: sequences.map((s, i) => Array.from({ length: Math.ceil(s.length / 16) }, (_, b) => i * 100 + b)) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { steps: { type: 'string' }, seqs: { type: 'string' } } });
  const steps = Number(values.steps ?? 2000), seqs = Number(values.seqs ?? 64);
  const plan = decodePlan(seqs);
  const shape: GroupShape = { size: 2, planInts: planCapacity(seqs, seqs, 128), slotBytes: 8 };
  const planInts = encodePlan(plan, new Int32Array(shape.planInts));

  // Threads: start a rank (boot + engine modules + addon), then plans through shared memory.
  const mem = GroupMemory.create(shape);
  let t0 = performance.now();
  const w = startRank({ sab: mem.sab, shape, rank: 1, entry: import.meta.url, role: 'thread-echo' });
  mem.barrier(0, 'thread rank ready', 60_000);
  const threadStartMs = performance.now() - t0;
  const writer = new PlanWriter(mem);
  const threadRound: number[] = [];
  for (let i = 0; i < steps; i++) {
    const before = Atomics.load(mem.ctrl, ACK);
    t0 = performance.now();
    writer.publish(plan);
    while (Atomics.load(mem.ctrl, ACK) === before) Atomics.wait(mem.ctrl, ACK, before, 1000);
    threadRound.push(performance.now() - t0);
  }
  writer.stop();
  await w.terminate();

  // Processes: start a rank (node + tsx + the same modules), then plans as JSON over the IPC pipe.
  t0 = performance.now();
  const child = fork(new URL(import.meta.url), ['--process-echo'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve) => child.once('message', () => resolve()));
  const processStartMs = performance.now() - t0;
  const wire = { phase: plan.phase, newTokens: plan.newTokens, blockTables: plan.blockTables, sequences: plan.sequences.map((s) => ({ id: s.id, cached: s.cachedTokens, token: s.promptIds[s.cachedTokens] })) };
  const processRound: number[] = [];
  for (let i = 0; i < steps; i++) {
    t0 = performance.now();
    child.send(wire);
    await new Promise<void>((resolve) => child.once('message', () => resolve()));
    processRound.push(performance.now() - t0);
  }
  child.kill();

  console.log(`a decode step of ${seqs} sequences (${planInts} ints of plan), ${steps} hand-offs each, medians:`);
  console.log(`  threads:   start a rank ${threadStartMs.toFixed(0)} ms; hand a step's plan over and hear back ${(1000 * median(threadRound)).toFixed(1)} us`);
  console.log(`  processes: start a rank ${processStartMs.toFixed(0)} ms; hand a step's plan over and hear back ${(1000 * median(processRound)).toFixed(1)} us`);
}

if (isMainThread && process.argv.includes('--process-echo')) {
  await import('@aios/engine-core'); // the same modules a rank loads (the addon included)
  process.send!('ready');
  process.on('message', () => process.send!('ok'));
} else if (!isMainThread && (workerData as { role?: string }).role === 'thread-echo') {
  await import('@aios/engine-core');
  const mem = new GroupMemory(workerData.sab, workerData.shape);
  mem.barrier(1, 'thread rank ready', 60_000);
  const reader = new PlanReader(mem, 1);
  while (reader.next()) {
    Atomics.add(mem.ctrl, ACK, 1);
    Atomics.notify(mem.ctrl, ACK);
  }
} else if (isMainThread) await main();

