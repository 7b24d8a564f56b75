// Lesson 11, past the graph: a decode step of a few sequences as ONE kernel for
// all the decoder layers (native/src/cuda/persistent_decode.cu). A graph removes
// the host from the step, but not the ~290 kernel boundaries inside it: at one
// token each kernel starts, runs on a GPU it leaves mostly idle, and drains,
// and the step costs several times the 0.29 ms its weights take to read. The
// persistent kernel keeps one block on every SM for the whole step; the blocks
// meet at a grid-wide barrier between a layer's stages, and each streams its
// share of every weight matrix through a ring of shared memory that runs ahead
// across those barriers. The embedding before it and the LM head after it stay
// lesson 10's kernels; the graph of a batch bucket of 1-8 sequences records the
// embedding, the kernel (after a memset of its counters) and the LM head
// (gatherRows and the matmul) instead of lesson 10's forward.
import { Tensor, ops } from '@aios/engine-core';
import { envChoice } from '@aios/engine-core/env.ts';
import type { PersistentDecodePlan, PersistentDecodeWeights } from '@aios/engine-core/ops.ts';
import type { EngineContext } from '@aios/engine-core/engine/types.ts';
import type { KVPool, StepInput } from '@aios/lesson-07-batching';
import type { FusedStepModel, FusedWeights } from '@aios/lesson-10-fused-layers';

/**
 * AIOS_PERSISTENT_DECODE: 1 = small decode buckets use the persistent kernel where it can run the
 * model; unset or 0 = they replay lesson 10's forward. Off by default: on one H200 it has not yet
 * beaten the graph of lesson 10's kernels at any bucket (batch 1: 1.24-1.25 ms a step against 1.20;
 * 8 sequences: 1.95 against 1.42; the README's "One kernel for the whole step" says where its time goes).
 */
export function persistentDecodeSwitch(env: NodeJS.ProcessEnv = process.env): boolean {
  return envChoice('AIOS_PERSISTENT_DECODE', ['0', '1'], env) === '1';
}

/**
 * Stacks each kind of layer matrix into one [layers, ...] tensor (the kernel indexes the layers
 * itself) and points the fused forward's per-layer tensors at slices of it, freeing the separate
 * ones: the same weights, held once.
 */
function stackLayers(w: FusedWeights): { stacked: PersistentDecodeWeights; owners: Tensor[] } {
  const owners: Tensor[] = [];
  const stack = (key: 'qkvProj' | 'oProj' | 'gateUpProj' | 'downProj' | 'inputNorm' | 'postNorm' | 'qNorm' | 'kNorm'): Tensor => {
    const parts = w.layers.map((l) => l[key]);
    const s = ops.concat(parts, 0).view(parts.length, ...parts[0]!.shape);
    owners.push(s);
    w.layers.forEach((l, i) => {
      l[key].dispose();
      l[key] = s.select(0, i);
    });
    return s;
  };
  const stacked: PersistentDecodeWeights = {
    qkv: stack('qkvProj'), o: stack('oProj'), gateUp: stack('gateUpProj'), down: stack('downProj'),
    inputNorm: stack('inputNorm'), postNorm: stack('postNorm'), qNorm: stack('qNorm'), kNorm: stack('kNorm'),
    finalNorm: w.norm,
  };
  return { stacked, owners };
}

export class PersistentDecode {
  private readonly weights: PersistentDecodeWeights;
  private readonly owners: Tensor[];
  private readonly partials: Tensor;
  private readonly sync: Tensor;

  /**
   * The persistent path for this model, or why there is none: the switch is off, the device is
   * the CPU, the forward is split over ranks (lesson 14), the attention has step-dependent
   * variants the kernel does not implement (lesson 13's cascade), or the kernel cannot run the shape.
   */
  static create(
    model: FusedStepModel,
    ctx: EngineContext,
    opts: { parallel: boolean; attentionVariants: boolean; /** The graph model's batch buckets. */ buckets: readonly number[] },
  ): PersistentDecode | { why: string } {
    if (!persistentDecodeSwitch()) return { why: 'off (AIOS_PERSISTENT_DECODE=1 turns it on)' };
    if (ctx.device === 'cpu') return { why: 'a CUDA kernel; the CPU runs lesson 10\'s forward' };
    if (opts.parallel) return { why: 'one GPU only (the forward here is split over ranks)' };
    if (opts.attentionVariants) return { why: 'plain decode attention only (this engine\'s attention has step-dependent variants)' };
    const { cfg } = ctx;
    const shape = { layers: cfg.numLayers, hidden: cfg.hiddenSize, qHeads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: cfg.headDim, inter: cfg.intermediateSize };
    if (ctx.dtype !== 'bf16' && ctx.dtype !== 'f16') return { why: `bf16 or f16 only, not ${ctx.dtype}` };
    const plans = new Map<number, PersistentDecodePlan>();
    for (const seqs of opts.buckets) {
      const plan = ops.persistentDecodePlan(ctx.device, { tokens: seqs, ...shape });
      if (plan.why !== '') {
        if (plans.size === 0) return { why: `cannot run this model: it ${plan.why}` };
        break; // too many rows (the kernel takes 1-8), or more shared memory than fits: no larger bucket runs either
      }
      plans.set(seqs, plan);
    }
    return new PersistentDecode(model, plans);
  }

  private constructor(
    private readonly model: FusedStepModel,
    /** The plan of each batch bucket it takes. */
    readonly plans: ReadonlyMap<number, PersistentDecodePlan>,
  ) {
    ({ stacked: this.weights, owners: this.owners } = stackLayers(model.weights));
    const partials = Math.max(...[...plans.values()].map((p) => p.partialFloats));
    const sync = Math.max(...[...plans.values()].map((p) => p.syncWords));
    this.partials = Tensor.empty([partials], { dtype: 'f32', device: model.ctx.device });
    this.sync = Tensor.empty([sync], { dtype: 'i32', device: model.ctx.device });
  }

  /** Whether a decode step of this many rows (a batch bucket) runs here. */
  takes(seqs: number): boolean {
    return this.plans.has(seqs);
  }

  /** The step's logits (the fused forward's workspace): embedding, the persistent kernel, the LM head. */
  run(step: StepInput, pool: KVPool): Tensor {
    const m = this.model, ws = m.workspace, cfg = m.ctx.cfg, T = step.numTokens;
    const rows = (t: Tensor) => t.narrow(0, 0, T);
    const residual = rows(ws.residual);
    ops.embedding(m.weights.embed, step.ids, residual);
    ops.persistentDecode({
      weights: this.weights, cos: m.rope.cos, sin: m.rope.sin, kvPool: pool.tensor, blockSize: step.meta.blockSize,
      positions: step.positions, slotMapping: step.slotMapping, contextLens: step.meta.contextLens, blockTables: step.meta.blockTables,
      residual, normedOut: rows(ws.normed), qkv: rows(ws.qkv), attn: rows(ws.attn).view(T, cfg.numHeads * cfg.headDim), act: rows(ws.act),
      partials: this.partials, sync: this.sync, eps: cfg.rmsNormEps,
    });
    return m.lmHead(step);
  }

  describe(): string {
    const [first] = this.plans.values();
    return `persistent decode kernel for batch buckets ${[...this.plans.keys()].join(', ')} (one launch for all ${this.model.ctx.cfg.numLayers} layers: ` +
      `${first!.grid} blocks, one per SM; the context split ${[...this.plans.values()].map((p) => p.splits).join('/')} ways)`;
  }

  dispose(): void {
    this.partials.dispose();
    this.sync.dispose();
    for (const t of this.owners) t.dispose();
  }
}
