// Lesson 11 on CUDA (bf16, the Qwen3-0.6B shape): decode replayed from CUDA
// graphs gives lesson 10's logits within bf16 tolerance (the same kernels; the
// decode kernel may split a bucket's context differently from an exact step's),
// and the decode steps are replayed, not run eagerly. Lessons 10 and 11 both
// agree with lesson 06 (one sequence at a time through the paged cache, none of
// the batched runtime's kernels) within the same tolerance. The same with the
// persistent decode kernel switched on (AIOS_PERSISTENT_DECODE=1): every step of
// this path (5 sequences, the 8-row bucket) replays it, and its logits (its own
// projections, attention and sums) agree with lesson 10's within bf16 tolerance.
import { beforeAll, describe, expect, it } from 'vitest';

import { cudaAvailable } from '@aios/engine-core';
import { ensureDefaultModel } from '@aios/engine-core/model/resolve.ts';
import type { Tensor } from '@aios/engine-core';
import type { StepPlan } from '@aios/engine-core/engine/types.ts';
import { type KVPool, type StepInputBuffer, batchedRecipe } from '@aios/lesson-07-batching';
import { recipe as paged } from '@aios/lesson-06-paged-kv-cache';
import { recipe as fused } from '@aios/lesson-10-fused-layers';

import { type Rows, expectBf16Agreement, runForced } from '../../../engine-core/test/forced-path.ts';
import { GraphStepModel } from '../src/graph-model.ts';
import { lesson11Parts, recipe as graphs } from '../src/recipe.ts';

const hasGpu = cudaAvailable();
if (!hasGpu) console.log('lesson 11 graphs.gpu.test: skipped: no usable CUDA device on this machine');

const path = { promptLengths: [11, 40, 130, 1, 900], steps: 10 };

describe.skipIf(!hasGpu)('lesson 11 on CUDA (bf16, Qwen3-0.6B shape) against lesson 10', () => {
  let rows: { l06: Rows; l10: Rows; l11: Rows; persistent: Rows };
  let described: string[] = [];
  let describedPersistent: string[] = [];
  beforeAll(() => {
    const model = ensureDefaultModel('gpu', () => {});
    const opts = { model, device: 'cuda:0' as const, engine: { maxNumBatchedTokens: 2048, maxNumSeqs: 32 } };
    const before = process.env.AIOS_PERSISTENT_DECODE;
    delete process.env.AIOS_PERSISTENT_DECODE;
    const l11 = runForced(graphs, path, opts);
    process.env.AIOS_PERSISTENT_DECODE = '1'; // read when the graph model is built
    let persistent: ReturnType<typeof runForced>;
    try {
      persistent = runForced(graphs, path, opts);
    } finally {
      if (before === undefined) delete process.env.AIOS_PERSISTENT_DECODE;
      else process.env.AIOS_PERSISTENT_DECODE = before;
    }
    described = l11.described;
    describedPersistent = persistent.described;
    rows = { l06: runForced(paged, path, { model, device: 'cuda:0' }).rows, l10: runForced(fused, path, opts).rows, l11: l11.rows, persistent: persistent.rows };
  }, 600_000);

  it('replays every decode step from a graph (lesson 10\'s kernels by default)', () => {
    console.log(described.join('\n'));
    expect(described.join('\n')).toMatch(/decode graphs captured at start-up/);
    expect(described.join('\n')).toMatch(/decode steps so far: [1-9]\d* replayed, 0 eager/);
    expect(described.join('\n')).toMatch(/no persistent decode kernel: off/);
  });

  it('agrees with lesson 10 within bf16 tolerance', () => {
    expectBf16Agreement('lesson 11 vs 10 on CUDA bf16 (0.6B shape)', rows.l11, rows.l10);
  });

  for (const name of ['l10', 'l11'] as const)
    it(`lesson ${name.slice(1)} agrees with lesson 06 within bf16 tolerance`, () => {
      expectBf16Agreement(`lesson ${name.slice(1)} vs 06 on CUDA bf16 (0.6B shape)`, rows[name], rows.l06);
    });

  it('with AIOS_PERSISTENT_DECODE=1: every decode step replays the persistent kernel, within bf16 tolerance of lesson 10', () => {
    console.log(describedPersistent.join('\n'));
    expect(describedPersistent.join('\n')).toMatch(/persistent decode kernel for batch buckets 1, 2, 4, 8 \(one launch for all 28 layers/);
    expect(describedPersistent.join('\n')).toMatch(/decode steps so far: ([1-9]\d*) replayed \(\1 of them through the persistent kernel\), 0 eager/);
    expectBf16Agreement('lesson 11 persistent vs 10 on CUDA bf16 (0.6B shape)', rows.persistent, rows.l10);
  });
});

// The must-show "graph replay produces exactly the logits of the eager fused forward": every
// replayed decode step is run again eagerly in its bucket's layout (GraphStepModel.eagerInBucket:
// the kernels the graph recorded, launched one by one on the same buffers) and the two sets of
// logits must be the same bits: the graph adds no arithmetic of its own. Three forced paths cover
// buckets 1, 8 and 32 rows and the 1k and 4k context bounds, and the persistent kernel's bucket 8.
class ReplayCheckedModel extends GraphStepModel {
  static readonly tally = { decodeSteps: 0, replays: 0, steps: 0, rows: 0, differing: 0, maxAbs: 0, batchSizes: new Set<number>() };
  override forward(plan: StepPlan, input: StepInputBuffer, pool: KVPool): Tensor {
    const before = this.counts.replayed;
    const replayed = super.forward(plan, input, pool);
    if (plan.phase !== 'decode') return replayed;
    ReplayCheckedModel.tally.decodeSteps++;
    ReplayCheckedModel.tally.replays += this.counts.replayed - before; // the step took the graph, not the eager path
    const fromGraph = new Float32Array(replayed.toArray() as Float32Array); // a copy: the eager run writes the same workspace
    const eager = this.eagerInBucket(plan, input, pool);
    if (!eager) return replayed;
    const fromEager = eager.toArray() as Float32Array;
    const t = ReplayCheckedModel.tally;
    t.steps++;
    t.rows += plan.sequences.length;
    t.batchSizes.add(plan.sequences.length);
    const a = new Uint32Array(fromGraph.buffer), b = new Uint32Array(fromEager.buffer, fromEager.byteOffset, fromEager.length);
    if (a.length !== b.length) throw new Error(`replay gave ${a.length} logits, the eager forward ${b.length}`);
    for (let i = 0; i < a.length; i++)
      if (a[i] !== b[i]) {
        t.differing++;
        t.maxAbs = Math.max(t.maxAbs, Math.abs(fromGraph[i]! - fromEager[i]!));
      }
    return eager;
  }
}

const replayChecked = batchedRecipe('cuda-graphs-replay-checked', 11, 'lesson 11, every replayed decode step run again eagerly in its layout', {
  ...lesson11Parts,
  model: (ctx, attention) => new ReplayCheckedModel(ctx, attention),
});

describe.skipIf(!hasGpu)('lesson 11 on CUDA: a replayed decode step against the eager forward in its bucket\'s layout', () => {
  const opts = { device: 'cuda:0' as const, engine: { maxNumBatchedTokens: 2048, maxNumSeqs: 32 } };
  const paths = [
    { promptLengths: [11, 40, 130, 1, 900], steps: 6 }, // 5 sequences: the 8-row bucket, contexts under 1k
    { promptLengths: [1500], steps: 4 }, // one sequence past 1k: the 1-row bucket of the 4k bound
    { promptLengths: Array.from({ length: 20 }, (_, i) => 20 + 7 * i), steps: 3 }, // 20 sequences: the 32-row bucket
  ];
  const run = (persistent: boolean, which: typeof paths) => {
    const before = process.env.AIOS_PERSISTENT_DECODE;
    if (persistent) process.env.AIOS_PERSISTENT_DECODE = '1';
    else delete process.env.AIOS_PERSISTENT_DECODE;
    const t = ReplayCheckedModel.tally;
    Object.assign(t, { decodeSteps: 0, replays: 0, steps: 0, rows: 0, differing: 0, maxAbs: 0, batchSizes: new Set<number>() });
    try {
      const model = ensureDefaultModel('gpu', () => {});
      for (const path of which) runForced(replayChecked, path, { ...opts, model });
    } finally {
      if (before === undefined) delete process.env.AIOS_PERSISTENT_DECODE;
      else process.env.AIOS_PERSISTENT_DECODE = before;
    }
    return { ...t, batchSizes: [...t.batchSizes].sort((x, y) => x - y) };
  };

  it('lesson 10\'s kernels: the same bits in every replayed step', () => {
    const t = run(false, paths);
    console.log(`replay vs eager (lesson 10's kernels): ${t.steps} of ${t.decodeSteps} decode steps checked, ${t.rows} rows (sequences a step: ${t.batchSizes.join(', ')}), ${t.differing} logits differ (max |d| ${t.maxAbs})`);
    expect(t.steps).toBeGreaterThan(0);
    expect(t.steps).toBe(t.decodeSteps); // every decode step had a graph and was checked
    expect(t.replays).toBe(t.decodeSteps); // and forward replayed it
    expect(t.batchSizes).toEqual(expect.arrayContaining([1, 5, 20]));
    expect(t.differing).toBe(0);
  }, 600_000);

  it('the persistent kernel (AIOS_PERSISTENT_DECODE=1): the same bits in every replayed step', () => {
    const t = run(true, paths.slice(0, 2));
    console.log(`replay vs eager (persistent kernel): ${t.steps} of ${t.decodeSteps} decode steps checked, ${t.rows} rows (sequences a step: ${t.batchSizes.join(', ')}), ${t.differing} logits differ (max |d| ${t.maxAbs})`);
    expect(t.steps).toBeGreaterThan(0);
    expect(t.steps).toBe(t.decodeSteps);
    expect(t.replays).toBe(t.decodeSteps);
    expect(t.batchSizes).toEqual(expect.arrayContaining([1, 5]));
    expect(t.differing).toBe(0);
  }, 600_000);
});
