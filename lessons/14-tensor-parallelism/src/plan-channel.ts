// Rank 0 runs the scheduler; the other ranks run the same forward on their
// shards. Once per step, rank 0 writes the step's plan into the shared memory
// (a few ints per sequence: the tokens this step runs, where they start, the
// block table) and wakes the others, who rebuild the step from it. The plan is
// all a rank needs: it keeps no sequences of its own, as lesson 07's runner
// keeps none.
//
//   [phase, sequences] then per sequence: [id, cachedTokens, newTokens, samples, tableLength, tokens..., table...]
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { type StepPhase, type StepPlan, samplesAt } from '@aios/engine-core/engine/types.ts';

import { CTRL, type GroupMemory, STEP_RUN, STEP_STOP } from './group-memory.ts';

const PHASES: StepPhase[] = ['prefill', 'decode', 'mixed'];

/** The ints a plan of the engine's largest step can take. */
export function planCapacity(maxTokens: number, maxSeqs: number, maxBlocksPerSeq: number): number {
  return 2 + maxSeqs * 5 + maxTokens + maxSeqs * maxBlocksPerSeq;
}

/** Token i of a sequence, prompt then output. */
function tokenAt(seq: Sequence, i: number): number {
  const p = seq.promptIds.length;
  return i < p ? seq.promptIds[i]! : seq.outputIds[i - p]!;
}

export function encodePlan(plan: StepPlan, out: Int32Array): number {
  const tables = plan.blockTables;
  if (!tables) throw new Error('encodePlan: a tensor-parallel step needs block tables');
  let at = 0;
  const put = (v: number) => {
    if (at >= out.length) throw new Error(`encodePlan: the step does not fit the plan area's ${out.length} ints`);
    out[at++] = v;
  };
  put(PHASES.indexOf(plan.phase));
  put(plan.sequences.length);
  plan.sequences.forEach((seq, i) => {
    const n = plan.newTokens[i]!, table = tables[i]!;
    put(seq.id);
    put(seq.cachedTokens);
    put(n);
    put(samplesAt(plan, i) ? 1 : 0);
    put(table.length);
    for (let t = 0; t < n; t++) put(tokenAt(seq, seq.cachedTokens + t));
    for (const b of table) put(b);
  });
  return at;
}

/**
 * What the runner reads of a sequence, rebuilt on another rank: its id, the cached
 * tokens, its length (so samplesAt says what rank 0's does) and the tokens of this
 * step at their positions. Nothing else of a Sequence is used by a runner.
 */
class StepSequence {
  readonly outputIds: number[] = [];
  constructor(
    readonly id: number,
    readonly cachedTokens: number,
    readonly length: number,
    readonly promptIds: number[],
  ) {}
}

export function decodePlan(data: Int32Array, length: number): StepPlan {
  let at = 0;
  const get = () => {
    if (at >= length) throw new Error('decodePlan: the plan ends early');
    return data[at++]!;
  };
  const phase = PHASES[get()];
  if (!phase) throw new Error('decodePlan: unknown phase');
  const count = get();
  const sequences: Sequence[] = [], newTokens: number[] = [], blockTables: number[][] = [];
  for (let s = 0; s < count; s++) {
    const id = get(), cached = get(), n = get(), samples = get(), tableLength = get();
    const ids: number[] = new Array<number>(cached + n);
    for (let t = 0; t < n; t++) ids[cached + t] = get();
    const table: number[] = [];
    for (let b = 0; b < tableLength; b++) table.push(get());
    // A chunk that stops short of the last token does not sample: its sequence is longer than the step reaches.
    sequences.push(new StepSequence(id, cached, cached + n + (samples ? 0 : 1), ids) as unknown as Sequence);
    newTokens.push(n);
    blockTables.push(table);
  }
  return { sequences, newTokens, phase, blockTables };
}

/** Rank 0's side: one write per step. */
export class PlanWriter {
  private seq = 0;
  constructor(private readonly mem: GroupMemory) {}

  publish(plan: StepPlan): void {
    const next = this.seq + 1;
    const n = encodePlan(plan, this.mem.plans[next % 2]!);
    this.signal(next, STEP_RUN, n);
  }

  stop(): void {
    this.signal(this.seq + 1, STEP_STOP, 0);
  }

  private signal(next: number, kind: number, length: number): void {
    const c = this.mem.ctrl;
    Atomics.store(c, CTRL.planLength, length);
    Atomics.store(c, CTRL.stepKind, kind);
    Atomics.store(c, CTRL.step, next);
    Atomics.notify(c, CTRL.step);
    this.seq = next;
  }
}

/** The other ranks' side: waits for the next step (idle waits have no deadline: a server may sit idle). */
export class PlanReader {
  private seq = 0;
  constructor(
    private readonly mem: GroupMemory,
    private readonly rank: number,
  ) {}

  /** The next plan, or undefined when rank 0 says stop. */
  next(): StepPlan | undefined {
    const c = this.mem.ctrl;
    while (Atomics.load(c, CTRL.step) === this.seq) {
      Atomics.wait(c, CTRL.step, this.seq, 1000);
      this.mem.checkAbort(this.rank);
    }
    this.seq = Atomics.load(c, CTRL.step);
    if (Atomics.load(c, CTRL.stepKind) === STEP_STOP) return undefined;
    return decodePlan(this.mem.plans[this.seq % 2]!, Atomics.load(c, CTRL.planLength));
  }
}
