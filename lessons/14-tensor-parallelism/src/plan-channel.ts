// Rank 0 runs the scheduler; the other ranks run the same forward on their
// shards. Once per step, rank 0 writes the step's plan into the shared memory
// (a few ints per sequence: the tokens this step runs, where they start, the
// block table) and wakes the others, who rebuild the step from it. The plan is
// all a rank needs: it keeps no sequences of its own, as lesson 07's runner
// keeps none.
//
//   [phase, sequences] then per sequence: [id, cachedTokens, newTokens, samples, tableLength, tokens..., table...]
//   then [race rows] and per race row: [temperature (f32 bits), seed low, seed high, position]
//   (shard-race.ts: the sampled rows' parameters when they race over the vocabulary shards; 0 rows: the step gathers)
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { type StepPhase, type StepPlan, samplesAt } from '@aios/engine-core/engine/types.ts';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';

import { CTRL, type GroupMemory, STEP_RUN, STEP_STOP } from './group-memory.ts';
import type { ShardStep } from './shard-race.ts';

const PHASES: StepPhase[] = ['prefill', 'decode', 'mixed'];

/** Ints per race row: temperature, seed low and high words, position. */
const RACE_ROW_INTS = 4;

/** The ints a plan of the engine's largest step can take. */
export function planCapacity(maxTokens: number, maxSeqs: number, maxBlocksPerSeq: number): number {
  return 2 + maxSeqs * 5 + maxTokens + maxSeqs * maxBlocksPerSeq + 1 + maxSeqs * RACE_ROW_INTS;
}

const f32 = new Float32Array(1), f32Bits = new Int32Array(f32.buffer);

export function encodePlan(plan: ShardStep, out: Int32Array): number {
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
    for (let t = 0; t < n; t++) put(seq.tokenAt(seq.cachedTokens + t));
    for (const b of table) put(b);
  });
  const race = plan.race ?? [];
  put(race.length);
  for (const r of race) {
    f32[0] = r.temperature;
    put(f32Bits[0]!);
    put(r.seed % 0x100000000 | 0);
    put(Math.floor(r.seed / 0x100000000) | 0);
    put(r.position);
  }
  return at;
}

/** A race row as rank 0's sampler made it (rowSpec): a temperature (or greedy) and a seed, nothing else. */
function raceRow(temperatureBits: number, seedLo: number, seedHi: number, position: number): SampleRowSpec {
  f32Bits[0] = temperatureBits;
  return {
    temperature: f32[0]!,
    topK: 0,
    topP: 1,
    minP: 0,
    repetitionPenalty: 1,
    presencePenalty: 0,
    frequencyPenalty: 0,
    seed: (seedLo >>> 0) + (seedHi >>> 0) * 0x100000000,
    position: position >>> 0, // written as an int32 word: a position past 2^31 - 1 reads back as rank 0 had it
    logprobs: -1,
  };
}

/**
 * What the runner reads of a sequence, rebuilt on another rank: its id, the cached
 * tokens, its length (so samplesAt says what rank 0's does) and the tokens of this
 * step (tokenAt, from cachedTokens on). Nothing else of a Sequence is used by a runner.
 * Only this step's tokens are kept: a list as long as the sequence, holes before them,
 * cost a decode step of 256 sequences megabytes of allocation on the rank's thread.
 */
class StepSequence {
  constructor(
    readonly id: number,
    readonly cachedTokens: number,
    readonly length: number,
    private readonly tokens: Int32Array,
  ) {}

  tokenAt(i: number): number {
    const t = this.tokens[i - this.cachedTokens];
    if (t === undefined) throw new RangeError(`StepSequence ${this.id}: token ${i} is not in this step (tokens ${this.cachedTokens}..${this.cachedTokens + this.tokens.length - 1})`);
    return t;
  }
}

export function decodePlan(data: Int32Array, length: number): ShardStep {
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
    if (at + n + tableLength > length) throw new Error('decodePlan: the plan ends early');
    const tokens = data.slice(at, at + n);
    at += n;
    const table: number[] = new Array<number>(tableLength);
    for (let b = 0; b < tableLength; b++) table[b] = data[at++]!;
    // A chunk that stops short of the last token does not sample: its sequence is longer than the step reaches.
    sequences.push(new StepSequence(id, cached, cached + n + (samples ? 0 : 1), tokens) as unknown as Sequence);
    newTokens.push(n);
    blockTables.push(table);
  }
  const raceRows = get();
  if (raceRows === 0) return { sequences, newTokens, phase, blockTables };
  const race: SampleRowSpec[] = [];
  for (let r = 0; r < raceRows; r++) race.push(raceRow(get(), get(), get(), get()));
  return { sequences, newTokens, phase, blockTables, race };
}

/** Rank 0's side: one write per step. */
export class PlanWriter {
  private seq = 0;
  constructor(private readonly mem: GroupMemory) {}

  publish(plan: ShardStep): void {
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

/**
 * How long a rank spins on the step counter before it sleeps in Atomics.wait: the next plan
 * usually comes within a millisecond of the last step's end (rank 0 samples and schedules), and
 * a thread woken from Atomics.wait starts its step later than one that was watching.
 */
const SPIN_MS = 2;

/** The other ranks' side: waits for the next step (idle waits have no deadline: a server may sit idle). */
export class PlanReader {
  private seq = 0;
  constructor(
    private readonly mem: GroupMemory,
    private readonly rank: number,
  ) {}

  /** The next plan, or undefined when rank 0 says stop. */
  next(): ShardStep | undefined {
    const c = this.mem.ctrl;
    const spinUntil = performance.now() + SPIN_MS;
    while (Atomics.load(c, CTRL.step) === this.seq && performance.now() < spinUntil);
    while (Atomics.load(c, CTRL.step) === this.seq) {
      Atomics.wait(c, CTRL.step, this.seq, 1000);
      this.mem.checkAbort(this.rank);
    }
    this.seq = Atomics.load(c, CTRL.step);
    if (Atomics.load(c, CTRL.stepKind) === STEP_STOP) return undefined;
    return decodePlan(this.mem.plans[this.seq % 2]!, Atomics.load(c, CTRL.planLength));
  }
}
