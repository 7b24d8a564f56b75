// The race over vocabulary shards (shard-race.ts): each rank's sampleTokensShard over its
// slice, then raceWinners over the ranks' pairs, gives the token sampleTokens draws from
// the whole row (greedy and sampled rows, NaN entries, a slice or a row with nothing to
// keep), over 1, 2 and 4 slices, on the CPU and, where there is one, on the GPU; a row
// that needs the whole row is refused; the race rows travel with the plan; a staged race
// is only taken by the step it was staged for.
import { describe, expect, it } from 'vitest';

import { type Device, Tensor, cudaAvailable, ops } from '@aios/engine-core';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import type { StepPlan } from '@aios/engine-core/engine/types.ts';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';

import { randomArray } from '../../../engine-core/test/helpers.ts';
import { decodePlan, encodePlan } from '../src/plan-channel.ts';
import { RaceSlot, raceRows } from '../src/shard-race.ts';

const V = 4000;
const R = 24;

function row(over: Partial<SampleRowSpec>): SampleRowSpec {
  return { temperature: 0.6, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, seed: 7, position: 0, logprobs: -1, ...over };
}

/** Greedy and sampled rows at several temperatures, seeds past 2^32 among them; NaN entries in some rows. */
function batch(): { logits: Float32Array; rows: SampleRowSpec[] } {
  const logits = randomArray(R * V, 3, 11);
  const rows = Array.from({ length: R }, (_, r) => row({ temperature: [0, 0.6, 1, 1.5][r % 4]!, seed: r === 5 ? 2 ** 40 + 3 : 1000 + r, position: 31 * r }));
  for (let i = 0; i < V; i += 97) logits[3 * V + i] = NaN; // a sampled row with NaN entries (skipped)
  logits[4 * V + 3001] = NaN; // a greedy row with a NaN (the argmax's largest)
  for (let i = V / 2; i < V; i++) logits[6 * V + i] = NaN; // the second half of a row: nothing to keep there
  for (let i = 0; i < V; i++) logits[9 * V + i] = NaN; // a whole row: token 0
  return { logits, rows };
}

/** The race's tokens and the ranks' pairs ([ranks][rows][2] words) they came from. */
function shardRace(device: Device, logits: Float32Array, rows: SampleRowSpec[], ranks: number): { tokens: number[]; pairs: Int32Array } {
  const slice = V / ranks;
  const params = ops.uploadSampleParams(rows, new Int32Array(0), V, device);
  const pairs = new Int32Array(2 * ranks * R);
  try {
    for (let k = 0; k < ranks; k++) {
      const part = new Float32Array(R * slice);
      for (let r = 0; r < R; r++) part.set(logits.subarray(r * V + k * slice, r * V + (k + 1) * slice), r * slice);
      const t = Tensor.fromArray(part, [R, slice], { device });
      const out = ops.sampleTokensShard(t, params, k * slice);
      try {
        pairs.set(out.toArray() as Int32Array, 2 * k * R);
      } finally {
        t.dispose();
        out.dispose();
      }
    }
  } finally {
    params.dispose();
  }
  return { tokens: ops.raceWinners(pairs, ranks, R), pairs };
}

function wholeTokens(device: Device, logits: Float32Array, rows: SampleRowSpec[]): number[] {
  const t = Tensor.fromArray(logits, [R, V], { device });
  const out = ops.sampleTokens(t, rows);
  try {
    return Array.from(ops.readSampleOut(out.toArray() as Int32Array, R).tokens);
  } finally {
    t.dispose();
    out.dispose();
  }
}

const devices: Device[] = cudaAvailable() ? ['cpu', 'cuda:0'] : ['cpu'];
if (devices.length === 1) console.log('lesson 14 shard-race.test: the CUDA case skipped: no usable CUDA device on this machine');

describe('the race over vocabulary shards', () => {
  for (const device of devices)
    it(`on ${device}: the winner of the ranks' pairs is the token sampleTokens draws from the whole row, over 1, 2 and 4 slices`, () => {
      const { logits, rows } = batch();
      const whole = wholeTokens(device, logits, rows);
      expect(whole[9]).toBe(0); // every entry NaN
      expect(whole[4]).toBe(3001); // greedy: NaN counts as the largest
      for (const ranks of [1, 2, 4]) expect(shardRace(device, logits, rows, ranks).tokens).toEqual(whole);
      // A slice that kept nothing reports the index raceWinners takes for "nothing" (the kernel's
      // kNoSampleIndex, aios.h, and ops.NO_SAMPLE_INDEX are one value written in two languages).
      const { pairs } = shardRace(device, logits, rows, 2);
      const index = (rank: number, r: number) => pairs[2 * (rank * R + r) + 1];
      expect(index(1, 6)).toBe(ops.NO_SAMPLE_INDEX); // row 6's second half: all NaN, sampled
      expect(index(0, 6)).toBeLessThan(V / 2);
      expect([index(0, 9), index(1, 9)]).toEqual([ops.NO_SAMPLE_INDEX, ops.NO_SAMPLE_INDEX]);
      // The draw depends on the seed and the position: another seed moves some sampled rows.
      const reseeded = rows.map((s) => ({ ...s, seed: s.seed + 1 }));
      const moved = shardRace(device, logits, reseeded, 2).tokens.filter((t, r) => t !== whole[r]).length;
      expect(moved).toBeGreaterThan(R / 4);
    });

  it('picks by the race order: the larger score, NaN above all, ties to the lower index; a row no slice kept is token 0', () => {
    const f = new Float32Array(2), w = new Int32Array(f.buffer);
    const pair = (v: number, i: number) => {
      f[0] = v;
      return [w[0]!, i];
    };
    // [ranks][rows][2]: rank 0's rows, then rank 1's.
    const pairs = Int32Array.from([...pair(1, 5), ...pair(2, 7), ...pair(3, 9), ...pair(-Infinity, ops.NO_SAMPLE_INDEX), ...pair(2, 600), ...pair(2, 601), ...pair(NaN, 650), ...pair(-Infinity, ops.NO_SAMPLE_INDEX)]);
    expect(ops.raceWinners(pairs, 2, 4)).toEqual([600, 7, 650, 0]);
  });

  it('refuses what needs the whole row, a slice off the vocabulary or off a multiple of 4', () => {
    const t = Tensor.fromArray(new Float32Array(2 * 8), [2, 8]);
    const plain = ops.uploadSampleParams([row({}), row({ temperature: 0 })], new Int32Array(0), 16, 'cpu');
    const filtered = ops.uploadSampleParams([row({ topK: 3 }), row({})], new Int32Array(0), 16, 'cpu');
    const logprobs = ops.uploadSampleParams([row({ logprobs: 2 }), row({})], new Int32Array(0), 16, 'cpu');
    try {
      expect(() => ops.sampleTokensShard(t, filtered, 8)).toThrow(/plain rows only/);
      expect(() => ops.sampleTokensShard(t, logprobs, 8)).toThrow(/plain rows only/);
      expect(() => ops.sampleTokensShard(t, plain, 2)).toThrow(/multiple of 4/);
      expect(() => ops.sampleTokensShard(t, plain, 12)).toThrow(/outside the vocabulary of 16/);
      expect(() => ops.raceWinners(new Int32Array(6), 2, 2)).toThrow(/6 words for 2 ranks x 2 rows/);
    } finally {
      for (const x of [t, plain.packed, filtered.packed, logprobs.packed]) x.dispose();
    }
  });
});

describe('a step that races', () => {
  const seqs = [new Sequence([1, 2, 3], new SamplingParams({ temperature: 0.6, seed: 2 ** 40 + 9 })), new Sequence([4, 5], new SamplingParams({ temperature: 0 }))];
  const plan: StepPlan = { sequences: seqs, newTokens: [3, 2], phase: 'prefill', blockTables: [[0], [1]] };

  it('carries its rows to the other ranks with the plan (temperature as float32, a seed past 2^32, the position)', () => {
    const rows = raceRows(seqs)!;
    expect(rows.map((r) => r.position)).toEqual([3, 2]);
    const buf = new Int32Array(64);
    const back = decodePlan(buf, encodePlan({ ...plan, race: rows }, buf));
    expect(back.race).toEqual(rows.map((r) => ({ ...r, temperature: Math.fround(r.temperature) })));
    expect(decodePlan(buf, encodePlan(plan, buf)).race).toBeUndefined();
  });

  it('races only rows with nothing but a temperature and a seed', () => {
    expect(raceRows(seqs)).toHaveLength(2);
    for (const over of [{ topK: 5 }, { topP: 0.9 }, { minP: 0.1 }, { presencePenalty: 0.5 }, { logprobs: 1 }])
      expect(raceRows([seqs[0]!, new Sequence([7], new SamplingParams({ temperature: 0.7, ...over }))])).toBeUndefined();
    expect(raceRows([])).toBeUndefined();
  });

  it("is taken from the slot only by the plan whose sampled sequences it was staged for, once", () => {
    const slot = new RaceSlot();
    const rows = raceRows(seqs)!;
    slot.put(seqs, rows);
    expect(slot.take({ ...plan, sequences: [seqs[1]!, seqs[0]!] })).toBeUndefined(); // another order: another step
    expect(slot.take(plan)).toBeUndefined(); // the slot was emptied by the failed take
    slot.put(seqs, rows);
    expect(slot.take(plan)).toBe(rows);
    expect(slot.take(plan)).toBeUndefined();
    // A chunk that does not sample is not among the sampled sequences.
    slot.put([seqs[1]!], raceRows([seqs[1]!]));
    expect(slot.take({ ...plan, newTokens: [2, 2] })).toHaveLength(1);
  });
});
