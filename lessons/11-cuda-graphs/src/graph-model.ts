// Lesson 11: the decode step as a CUDA graph. Lesson 10's forward queues 285
// kernels a step, each launched from JavaScript; here each decode shape is
// recorded once at start-up and replayed with one call. A graph bakes in every
// kernel's arguments (the buffers' addresses, the sizes), so a step can replay
// a graph only if it has the graph's exact shape: decode steps are padded up to
// a bucket of sequences (1, 2, 4, 8, then steps of 16, as vLLM and nano-vllm
// do) and of context length, their input written into the step buffer at the
// offsets the graph was recorded with (StepInputBuffer.buildFixed). Prefill
// steps, whose shapes vary without end, run eagerly through lesson 10's forward.
import { captureGraph, deviceIndex, native, synchronize } from '@aios/engine-core';
import type { EngineContext, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { AttentionVariants, FixedLayout, KVPool, PagedAttentionOp, StepInput, StepInputBuffer, StepModel, StepModelFactory } from '@aios/lesson-07-batching';
import { FusedStepModel, type ParallelHooks } from '@aios/lesson-10-fused-layers';
import type { Tensor } from '@aios/engine-core';

import { PersistentDecode } from './persistent-decode.ts';

/** Batch buckets: 1, 2, 4, 8, then every 16 up to the engine's limit (and the limit itself). */
export function batchBuckets(maxNumSeqs: number): number[] {
  const out = [1, 2, 4, 8].filter((b) => b <= maxNumSeqs);
  for (let b = 16; b < maxNumSeqs; b += 16) out.push(b);
  if (out[out.length - 1] !== maxNumSeqs) out.push(maxNumSeqs);
  return out;
}

/** Context buckets: 1k, 4k, 16k tokens and the model's longest; a bucket bounds the block tables' width and the decode kernel's split. */
export function contextBuckets(maxPositions: number): number[] {
  return [...[1024, 4096, 16384].filter((c) => c < maxPositions), maxPositions];
}

interface Captured {
  layout: FixedLayout;
  /** The attention op's variant the graph recorded (0 for an op without variants). */
  variant: number;
  graph: InstanceType<typeof native.Graph> | undefined;
}

export class GraphStepModel implements StepModel {
  readonly inner: FusedStepModel;
  private readonly captured: Captured[] = [];
  private captureSeconds = 0;
  private captureBytes = 0;
  /**
   * Decode steps replayed as graphs (of them, through the persistent kernel), run eagerly in a
   * bucket's padded layout (the CPU), and run eagerly as they are (no bucket fits).
   */
  readonly counts = { replayed: 0, persistent: 0, padded: 0, eager: 0 };
  /** Small decode buckets as one kernel for all the layers, or why not. */
  private readonly persistent: PersistentDecode | { why: string };
  /** Decode steps per attention variant (an op with variants: lesson 13's plain and cascade decode). */
  readonly decodeStepsByVariant: number[] = [];

  /** The attention op's step-dependent kernel choices (lesson 13), each captured as graphs of its own. */
  private readonly variants: AttentionVariants | undefined;

  constructor(
    readonly ctx: EngineContext,
    attention: PagedAttentionOp | undefined,
    /** Lesson 14: the fused forward's tensor-parallel hooks (each rank captures and replays its own graphs). */
    parallel?: ParallelHooks,
  ) {
    this.inner = new FusedStepModel(ctx, attention, parallel);
    this.variants = attention?.variants;
    this.persistent = PersistentDecode.create(this.inner, ctx, {
      parallel: parallel !== undefined,
      attentionVariants: this.variants !== undefined,
      buckets: batchBuckets(ctx.options.maxNumSeqs),
    });
  }

  /** The persistent path for a batch bucket, if it takes it. */
  private persistentFor(seqs: number): PersistentDecode | undefined {
    return this.persistent instanceof PersistentDecode && this.persistent.takes(seqs) ? this.persistent : undefined;
  }

  /** The forward a layout's graph records: the persistent kernel for the buckets it takes, else lesson 10's. */
  private forwardIn(layout: FixedLayout, step: StepInput, pool: KVPool): Tensor {
    const persistent = this.persistentFor(layout.seqs);
    return persistent ? persistent.run(step, pool) : this.inner.forwardStep(step, pool);
  }

  /** Records one graph per (batch bucket, context bucket, attention variant). On the CPU there are no graphs: decode steps still use the padded layouts. */
  prepare(pool: KVPool, input: StepInputBuffer): void {
    const { cfg, options, device } = this.ctx;
    const seqs = batchBuckets(options.maxNumSeqs), contexts = contextBuckets(cfg.maxPositionEmbeddings);
    const variants = Array.from({ length: this.variants?.count ?? 1 }, (_, v) => v);
    const layouts = contexts.flatMap((c) => seqs.map((b): FixedLayout => ({ seqs: b, width: Math.ceil(c / options.blockSize), maxContextLen: c })));
    const todo = variants.flatMap((variant) => layouts.map((layout) => ({ layout, variant })));
    if (device === 'cpu') {
      for (const t of todo) this.captured.push({ ...t, graph: undefined });
      return;
    }
    const perVariant = variants.length > 1 ? `, each for ${variants.length} attention variants` : '';
    this.ctx.log(`capturing ${todo.length} decode graphs (batch buckets ${seqs[0]}..${seqs[seqs.length - 1]}, ${seqs.length} of them; contexts up to ${contexts.join(', ')}${perVariant})...`);
    const dev = deviceIndex(device);
    this.settle();
    const freeBefore = native.memGetInfo(dev).free;
    const t0 = performance.now();
    let lastLine = t0;
    for (const [i, { layout, variant }] of todo.entries()) {
      this.variants?.select(variant);
      const step = input.buildFixed(undefined, layout); // all padding: what the graph computes does not matter, its shape does
      const forward = () => void this.forwardIn(layout, step, pool);
      forward(); // once eagerly: modules loaded, GEMM algorithms chosen, outside the capture
      this.settle();
      const graph = this.capture(forward);
      if (!graph) break; // capture refused (lesson 14): decode runs eagerly, see eagerBecause
      this.captured.push({ layout, variant, graph });
      if (performance.now() - lastLine > 2000) {
        this.ctx.log(`  ${i + 1}/${todo.length} graphs captured`);
        lastLine = performance.now();
      }
    }
    this.settle();
    this.captureSeconds = (performance.now() - t0) / 1000;
    this.captureBytes = freeBefore - native.memGetInfo(dev).free;
    if (this.eagerBecause) {
      for (const c of this.captured) c.graph?.dispose();
      this.captured.length = 0;
      this.ctx.log(`no decode graphs: ${this.eagerBecause}; decode steps run eagerly`);
    } else this.ctx.log(`captured ${todo.length} graphs in ${this.captureSeconds.toFixed(2)} s (${(this.captureBytes / 2 ** 20).toFixed(0)} MiB of device memory)`);
  }

  /** Waits for the device's queued work between captures (lesson 14 waits with a deadline instead). */
  protected settle(): void {
    synchronize(this.ctx.device);
  }

  /**
   * Records one graph. Lesson 14's ranks override this to agree, after every capture,
   * that all of them captured; returning undefined (with eagerBecause set) ends the
   * captures and leaves decode eager.
   */
  protected capture(record: () => void): InstanceType<typeof native.Graph> | undefined {
    return captureGraph(this.ctx.device, record);
  }

  /** Why decode runs eagerly although the device has graphs (a capture was refused), if it does. */
  protected eagerBecause: string | undefined;

  /** The captured graphs, smallest layout first (lesson 14 replays one to check its collectives). */
  protected graphs(): InstanceType<typeof native.Graph>[] {
    return this.captured.flatMap((c) => (c.graph ? [c.graph] : []));
  }

  forward(plan: StepPlan, input: StepInputBuffer, pool: KVPool): Tensor {
    const variant = this.variants ? this.variants.of(plan) : 0;
    this.variants?.select(variant); // eager steps run it too
    const fit = plan.phase === 'decode' ? this.bucketFor(plan, variant) : undefined;
    if (plan.phase === 'decode') this.decodeStepsByVariant[variant] = (this.decodeStepsByVariant[variant] ?? 0) + 1;
    if (!fit) {
      if (plan.phase === 'decode') this.counts.eager++;
      return this.inner.finish(plan, this.inner.forwardStep(input.build(plan), pool)); // the variant is selected above: not inner.forward, which would ask again
    }
    const B = plan.sequences.length;
    const step = input.buildFixed(plan, fit.layout); // the real rows, then padding, at the graph's offsets
    if (fit.graph) {
      fit.graph.launch();
      this.counts.replayed++;
      if (this.persistentFor(fit.layout.seqs)) this.counts.persistent++;
      return this.inner.finish(plan, this.inner.logitsRows(B));
    }
    this.counts.padded++;
    return this.inner.finish(plan, this.inner.forwardStep(step, pool).narrow(0, 0, B)); // the CPU: the same layout, run eagerly
  }

  /**
   * The decode step just replayed, run again eagerly: the very forward the step's graph recorded
   * (lesson 10's kernels, or the persistent kernel), launched one by one on the same buffers, in
   * the bucket's layout (the same padding rows, block-table width and context bound, so the
   * decode kernel splits the context as the graph does). Its K/V writes repeat the replay's (the
   * same values to the same slots), so it leaves the cache as it was. The step's logits rows, or
   * undefined where no graph holds the step (a prefill, an eager decode, the CPU). For the test
   * that a replay gives exactly the eager forward's logits: call it right after forward().
   */
  eagerInBucket(plan: StepPlan, input: StepInputBuffer, pool: KVPool): Tensor | undefined {
    if (plan.phase !== 'decode') return undefined;
    const variant = this.variants ? this.variants.of(plan) : 0;
    const fit = this.bucketFor(plan, variant);
    if (!fit?.graph) return undefined;
    this.variants?.select(variant);
    const logits = this.forwardIn(fit.layout, input.buildFixed(plan, fit.layout), pool);
    return this.inner.finish(plan, logits.narrow(0, 0, plan.sequences.length));
  }

  /** The smallest captured layout of the variant that holds the step: enough rows, a long enough context and wide enough tables. */
  private bucketFor(plan: StepPlan, variant: number): Captured | undefined {
    const B = plan.sequences.length;
    let longest = 0, widest = 0;
    plan.sequences.forEach((s, i) => {
      longest = Math.max(longest, s.cachedTokens + 1);
      widest = Math.max(widest, plan.blockTables?.[i]?.length ?? Infinity);
    });
    let best: Captured | undefined;
    for (const c of this.captured) {
      const l = c.layout;
      if (c.variant !== variant || l.seqs < B || l.maxContextLen < longest || l.width < widest) continue;
      if (!best || l.seqs * l.width < best.layout.seqs * best.layout.width) best = c;
    }
    return best;
  }

  describe(): string[] {
    const n = this.captured.length;
    const graphs = this.ctx.device === 'cpu'
      ? `no CUDA graphs on the CPU: decode steps run eagerly in the graphs' ${n} padded layouts${(this.variants?.count ?? 1) > 1 ? ` (${n / this.variants!.count} layouts x ${this.variants!.count} attention variants)` : ''}`
      : this.eagerBecause
        ? `no decode graphs (${this.eagerBecause}): decode steps run eagerly`
        : `${n} decode graphs captured at start-up in ${this.captureSeconds.toFixed(2)} s, ${(this.captureBytes / 2 ** 20).toFixed(0)} MiB of device memory`;
    const padded = this.counts.padded ? `, ${this.counts.padded} in padded layouts` : '';
    const persistent = this.persistent instanceof PersistentDecode ? this.persistent.describe() : `no persistent decode kernel: ${this.persistent.why}`;
    const throughIt = this.counts.persistent ? ` (${this.counts.persistent} of them through the persistent kernel)` : '';
    const byVariant = (this.variants?.count ?? 1) > 1 ? `; per attention variant ${Array.from({ length: this.variants!.count }, (_, v) => this.decodeStepsByVariant[v] ?? 0).join(' / ')}` : '';
    return [...this.inner.describe(), graphs, persistent, `decode steps so far: ${this.counts.replayed} replayed${throughIt}${padded}, ${this.counts.eager} eager (no bucket fit)${byVariant}`];
  }

  dispose(): void {
    for (const c of this.captured) c.graph?.dispose();
    this.inner.dispose();
    if (this.persistent instanceof PersistentDecode) this.persistent.dispose(); // after the forward's views of its stacked weights
  }
}

export const graphStepModel: StepModelFactory = (ctx, attention) => new GraphStepModel(ctx, attention);

