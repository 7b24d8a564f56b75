// Sampling over the vocabulary shards. Lesson 12's sampler draws a token by a race:
// vocabulary entry i of a row scores x_i / T - log(E_i), E_i exponential from Philox
// keyed by (the request's seed, the position, i), and the largest score wins (the
// argmax of x for a greedy row). An entry's score depends on its own logit and index
// only, so the race splits over the ranks' vocabulary slices exactly: each rank races
// its slice of the LM head's logits (ops.sampleTokensShard), the ranks all-gather one
// (score, index) pair per row, and rank 0 takes the best (ops.raceWinners): the token
// one GPU would draw from the whole row, given the same logits. That replaces the
// all-gather of the f32 logits (at 256 rows, 2 x 256 x 75,968 values, 156 MB written
// on each rank a step, then laid out on rank 0) with 2 KiB a rank.
//
// Rows with a top-k, top-p or min-p filter, penalties or log-probs need the whole row
// (a threshold over it, its softmax): a step with any such row gathers the logits and
// lesson 12's sampler samples them on rank 0, as before.
//
// Who decides: the sampler, when the engine stages the step's sampling (before it
// queues the forward). It leaves the rows in the engine's RaceSlot; the runner takes
// them when it runs that step and hands them to the other ranks with the plan, and
// every rank's forward ends in the race instead of the gather. A sampler that stages
// nothing (a test's recording sampler, lesson 12's on one rank) leaves the slot empty,
// and the step's logits are gathered.
import { Tensor, ops } from '@aios/engine-core';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';
import type { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import type { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { type EngineContext, type SampleResult, type Sampler, type StagedSample, type StepPlan, samplesAt } from '@aios/engine-core/engine/types.ts';
import { rowSpec } from '@aios/lesson-12-sampling';

/** A step as the ranks run it: the plan, and the sampled rows' parameters when they race over the shards. */
export interface ShardStep extends StepPlan {
  race?: SampleRowSpec[];
}

/** Whether a request's draw can race over the shards: nothing but a temperature (or greedy) and a seed. */
export function racesOverShards(p: SamplingParams): boolean {
  if (p.penalized || p.logprobs !== undefined) return false;
  return p.greedy || (p.topK === 0 && p.topP === 1 && p.minP === 0);
}

/** The sequences' row parameters when every one of them races over the shards; undefined otherwise (the step gathers). */
export function raceRows(sequences: readonly Sequence[]): SampleRowSpec[] | undefined {
  if (sequences.length === 0 || !sequences.every((s) => racesOverShards(s.params))) return undefined;
  return sequences.map(rowSpec);
}

/**
 * Where the sampler leaves a step's race for the runner (one per engine). The rows are
 * kept with the sequences they were made for: the runner takes them only for a plan
 * whose sampled sequences are exactly those, so a staged step that never ran cannot
 * make a later one race.
 */
export class RaceSlot {
  private sequences: readonly Sequence[] | undefined;
  private rows: SampleRowSpec[] | undefined;

  put(sequences: readonly Sequence[], rows: SampleRowSpec[] | undefined): void {
    this.sequences = rows ? sequences : undefined;
    this.rows = rows;
  }

  clear(): void {
    this.sequences = this.rows = undefined;
  }

  /** The race rows staged for this plan's sampled sequences, if any; the slot is empty afterwards. */
  take(plan: StepPlan): SampleRowSpec[] | undefined {
    const seqs = this.sequences, rows = this.rows;
    this.clear();
    if (!seqs || !rows) return undefined;
    let k = 0;
    for (let i = 0; i < plan.sequences.length; i++) {
      if (!samplesAt(plan, i)) continue;
      if (seqs[k] !== plan.sequences[i]) return undefined;
      k++;
    }
    return k === seqs.length ? rows : undefined;
  }
}

const slots = new WeakMap<EngineContext, RaceSlot>();

/** The engine's slot: the sampler's factory and the runner's get the same context, so the same slot. */
export function raceSlotFor(ctx: EngineContext): RaceSlot {
  let s = slots.get(ctx);
  if (!s) slots.set(ctx, (s = new RaceSlot()));
  return s;
}

/**
 * Rank 0's sampler on a tensor-parallel engine: a step whose rows all race over the
 * shards reads the ranks' (score, index) pairs the forward left (what the runner
 * returned) and picks each row's winner; any other step is lesson 12's sampler over
 * the gathered logits.
 */
export class ShardRaceSampler implements Sampler {
  /** Staged steps by how they sampled: raced over the shards, or from the gathered logits. */
  readonly steps = { raced: 0, gathered: 0 };

  constructor(
    /** The sampler of the steps that gather (lesson 12's): it must stage. */
    private readonly inner: Sampler,
    private readonly slot: RaceSlot,
    private readonly ranks: number,
  ) {
    if (!inner.stage) throw new Error('ShardRaceSampler: the sampler of the gathered steps must stage (lesson 12\'s does)');
  }

  unsupported(params: SamplingParams): string | undefined {
    return this.inner.unsupported?.(params);
  }

  release(seq: Sequence): void {
    this.inner.release?.(seq);
  }

  /** Unstaged, the runner had no race to run: the logits were gathered. */
  sample(logits: Tensor, sequences: readonly Sequence[]): SampleResult {
    return this.inner.sample(logits, sequences);
  }

  stage(sequences: readonly Sequence[]): StagedSample {
    const rows = raceRows(sequences);
    this.slot.put(sequences, rows);
    if (!rows) {
      this.steps.gathered++;
      return this.inner.stage!(sequences);
    }
    this.steps.raced++;
    let pairs: Tensor | undefined, done = false;
    return {
      launch: (t: Tensor) => {
        if (done || pairs) throw new Error('ShardRaceSampler: a staged sample is launched once, before it is read');
        if (t.dtype !== 'i32' || t.numel !== 2 * this.ranks * rows.length)
          throw new Error(`ShardRaceSampler: expected the ranks' race pairs (${2 * this.ranks * rows.length} i32), got ${t} (did the runner gather logits instead?)`);
        pairs = t;
      },
      read: (): SampleResult => {
        if (done || !pairs) throw new Error('ShardRaceSampler: a staged sample is read once, after its launch');
        done = true;
        return { tokens: ops.raceWinners(pairs.toArray() as Int32Array, this.ranks, rows.length) };
      },
      discard: () => {
        done = true;
        this.slot.clear();
      },
    };
  }
}
