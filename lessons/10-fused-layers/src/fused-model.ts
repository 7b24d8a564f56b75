// Lesson 10's model: the same Qwen3 function as engine-core's forward, with
// fewer, fused kernels and no allocation. Per decoder layer, 9 launches instead
// of 20:
//
//   normed   = addRmsnorm(down, residual, inputNorm)     residual += down (the previous layer's MLP); norm
//   qkv      = normed @ qkvProj^T                         one GEMM for q, k and v (weights concatenated at load)
//   q        = qkNormRopeStore(qkv, ...)                  q/k RMSNorm, RoPE, K/V into the pool at their slots
//   attn     = attention(q, pool, block tables)
//   o        = attn @ oProj^T
//   normed   = addRmsnorm(o, residual, postNorm)          residual += o; norm
//   gateUp   = normed @ gateUpProj^T                      one GEMM for gate and up
//   act      = siluMul(gateUp)
//   down     = act @ downProj^T
//
// Every intermediate lives in a workspace allocated once for the largest step
// the engine allows (maxNumBatchedTokens tokens, maxNumSeqs sampled rows), and
// every op writes into its slice of it: a forward allocates no device memory,
// which is what lesson 11 needs to capture it in a CUDA graph.
import { type Device, type DType, Tensor, ops } from '@aios/engine-core';
import type { EngineContext, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { Qwen3Config } from '@aios/engine-core/model/config.ts';
import { Qwen3Model, disposeWeights } from '@aios/engine-core/model/qwen3.ts';
import type { RotaryTables } from '@aios/engine-core/model/rope.ts';
import type { KVPool, PagedAttentionOp, StepInput, StepInputBuffer, StepModel, StepModelFactory } from '@aios/lesson-07-batching';
import { straightforwardAttention } from '@aios/lesson-07-batching';

export interface FusedLayerWeights {
  inputNorm: Tensor;
  /** [(qHeads + 2 kvHeads) x headDim, hidden]: q_proj, k_proj and v_proj stacked. */
  qkvProj: Tensor;
  qNorm: Tensor;
  kNorm: Tensor;
  oProj: Tensor;
  postNorm: Tensor;
  /** [2 x intermediate, hidden]: gate_proj then up_proj. */
  gateUpProj: Tensor;
  downProj: Tensor;
}

export interface FusedWeights {
  embed: Tensor;
  layers: FusedLayerWeights[];
  norm: Tensor;
  lmHead: Tensor;
}

/**
 * Loads a checkpoint (separate q/k/v and gate/up tensors, as Hugging Face stores
 * them) and stacks them into the fused matrices, freeing the separate ones. A rank
 * of a tensor-parallel group (lesson 14, ctx.shard) loads and stacks its slices only.
 */
export function loadFusedWeights(ctx: EngineContext): { weights: FusedWeights; rope: RotaryTables } {
  const model = Qwen3Model.load(ctx.modelDir, { device: ctx.device, dtype: ctx.dtype, ...(ctx.shard && { shard: ctx.shard.layout }) });
  const w = model.weights;
  const layers = w.layers.map((l): FusedLayerWeights => {
    const qkvProj = ops.concat([l.qProj, l.kProj, l.vProj], 0);
    const gateUpProj = ops.concat([l.gateProj, l.upProj], 0);
    for (const t of [l.qProj, l.kProj, l.vProj, l.gateProj, l.upProj]) t.dispose();
    return { inputNorm: l.inputNorm, qkvProj, qNorm: l.qNorm, kNorm: l.kNorm, oProj: l.oProj, postNorm: l.postNorm, gateUpProj, downProj: l.downProj };
  });
  return { weights: { embed: w.embed, layers, norm: w.norm, lmHead: w.lmHead }, rope: model.rope };
}

/** Every intermediate of the largest step, allocated once. */
export class Workspace {
  readonly residual: Tensor;
  readonly normed: Tensor;
  readonly qkv: Tensor;
  readonly q: Tensor;
  readonly attn: Tensor;
  readonly o: Tensor;
  readonly gateUp: Tensor;
  readonly act: Tensor;
  readonly down: Tensor;
  readonly last: Tensor;
  readonly logits: Tensor;
  private readonly all: Tensor[];

  constructor(cfg: Qwen3Config, maxTokens: number, maxSampled: number, dtype: DType, device: Device) {
    const { hiddenSize: H, numHeads: Hq, numKvHeads: Hkv, headDim: D, intermediateSize: I, vocabSize: V } = cfg;
    const t = (shape: number[], dt: DType = dtype) => Tensor.empty(shape, { dtype: dt, device });
    this.all = [
      (this.residual = t([maxTokens, H])),
      (this.normed = t([maxTokens, H])),
      (this.qkv = t([maxTokens, (Hq + 2 * Hkv) * D])),
      (this.q = t([maxTokens, Hq, D])),
      (this.attn = t([maxTokens, Hq, D])),
      (this.o = t([maxTokens, H])),
      (this.gateUp = t([maxTokens, 2 * I])),
      (this.act = t([maxTokens, I])),
      (this.down = t([maxTokens, H])),
      (this.last = t([maxSampled, H])),
      (this.logits = t([maxSampled, V], 'f32')),
    ];
  }

  get bytes(): number {
    return this.all.reduce((n, t) => n + t.numel * t.itemSize, 0);
  }

  dispose(): void {
    for (const t of this.all) t.dispose();
  }
}

/**
 * How the forward's partial results are combined when the model is split over
 * several GPUs (lesson 14's tensor parallelism); absent, one GPU holds all of it.
 * Each hook writes into buffers allocated once, so the forward still allocates
 * nothing and a CUDA graph can capture it, collectives included.
 */
export interface ParallelHooks {
  /** The embedding lookup of this rank's vocabulary rows, summed over the ranks into out. */
  embed(embed: Tensor, ids: Tensor, out: Tensor): void;
  /** After a row-parallel GEMM (o, down): sums the ranks' partial outputs in place. */
  reduce(partial: Tensor): void;
  /**
   * Optional: reduce(partial) and addRmsnorm(partial, residual, weight) in one (partial itself may
   * be left unsummed); false when it cannot take this shape, and the forward runs the two.
   */
  reduceAddRmsnorm?(partial: Tensor, residual: Tensor, weight: Tensor, eps: number, out: Tensor): boolean;
  /**
   * This rank's logits [rows, its vocabulary slice] -> what the engine's sampler reads: every rank's
   * logits side by side, [rows, vocab], in a buffer of the hooks'; or, for a step whose rows race
   * over the shards (lesson 14's shard-race.ts), each rank's best (score, index) per row. Run after
   * the forward (after a graph's replay), eagerly: the step decides which.
   */
  logitsFor(plan: StepPlan, local: Tensor): Tensor;
  /** Lines for EngineParts.describe (what this rank holds, what carries the collectives). */
  describe?(): string[];
  dispose(): void;
}

export class FusedStepModel implements StepModel {
  readonly weights: FusedWeights;
  readonly rope: RotaryTables;
  readonly workspace: Workspace;
  /** The attention op's scratch (lesson 09's split decode), sized once for the largest step. */
  readonly attentionScratch: Tensor | undefined;
  private readonly attention: PagedAttentionOp;

  constructor(
    readonly ctx: EngineContext,
    attention: PagedAttentionOp | undefined,
    /** Lesson 14: where the ranks combine their parts; undefined on one GPU. */
    readonly parallel?: ParallelHooks,
  ) {
    ({ weights: this.weights, rope: this.rope } = loadFusedWeights(ctx));
    this.attention = attention ?? straightforwardAttention;
    this.workspace = new Workspace(ctx.cfg, ctx.options.maxNumBatchedTokens, ctx.options.maxNumSeqs, ctx.dtype, ctx.device);
    const { cfg } = ctx;
    const scratch = this.attention.workspaceBytes?.({ device: ctx.device, dtype: ctx.dtype, maxNumSeqs: ctx.options.maxNumSeqs, maxContextLen: cfg.maxPositionEmbeddings, qHeads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: cfg.headDim }) ?? 0;
    this.attentionScratch = scratch > 0 ? Tensor.empty([Math.ceil(scratch / 4)], { dtype: 'f32', device: ctx.device }) : undefined;
  }

  forward(plan: StepPlan, input: StepInputBuffer, pool: KVPool): Tensor {
    // An op with step-dependent kernels (lesson 13) runs the choice this step needs, also eagerly.
    this.attention.variants?.select(this.attention.variants.of(plan));
    return this.finish(plan, this.forwardStep(input.build(plan), pool));
  }

  /** The step's logits for the sampler: this GPU's, or (lesson 14) what the ranks make of their slices. */
  finish(plan: StepPlan, local: Tensor): Tensor {
    return this.parallel ? this.parallel.logitsFor(plan, local) : local;
  }

  /**
   * The logits are a view of the workspace: valid until the next forward (the engine samples before
   * that). On a rank of lesson 14 they are its vocabulary slice (finish combines the ranks').
   */
  forwardStep(step: StepInput, pool: KVPool): Tensor {
    const { numHeads: Hq, headDim: D, rmsNormEps: eps } = this.ctx.cfg;
    const T = step.numTokens, ws = this.workspace;
    const rows = (t: Tensor, n: number) => t.narrow(0, 0, n);
    const residual = rows(ws.residual, T), normed = rows(ws.normed, T), qkv = rows(ws.qkv, T), q = rows(ws.q, T), attn = rows(ws.attn, T);
    const o = rows(ws.o, T), gateUp = rows(ws.gateUp, T), act = rows(ws.act, T), down = rows(ws.down, T);
    const attnRows = attn.view(T, Hq * D); // the o projection's input: the heads side by side
    const w = this.weights;

    // A row-parallel GEMM's output into the residual stream, normalized: on one GPU addRmsnorm; over
    // ranks the sum of their parts first (lesson 14; in one kernel where its hooks can).
    const addNorm = (x: Tensor, weight: Tensor) => {
      if (this.parallel?.reduceAddRmsnorm?.(x, residual, weight, eps, normed)) return;
      this.parallel?.reduce(x);
      ops.addRmsnorm(x, residual, weight, eps, normed);
    };
    if (this.parallel) this.parallel.embed(w.embed, step.ids, residual);
    else ops.embedding(w.embed, step.ids, residual);
    ops.rmsnorm(residual, w.layers[0]!.inputNorm, eps, normed);
    w.layers.forEach((L, l) => {
      ops.matmul(normed, L.qkvProj, qkv);
      const kCache = pool.k(l), vCache = pool.v(l);
      ops.qkNormRopeStore(
        { qkv, qNorm: L.qNorm, kNorm: L.kNorm, eps, positions: step.positions, cos: this.rope.cos, sin: this.rope.sin, slotMapping: step.slotMapping, kCache, vCache, qHeads: Hq },
        q,
      );
      this.attention(q, kCache, vCache, step.meta, attn, this.attentionScratch);
      ops.matmul(attnRows, L.oProj, o);
      addNorm(o, L.postNorm);
      ops.matmul(normed, L.gateUpProj, gateUp);
      ops.siluMul(gateUp, act);
      ops.matmul(act, L.downProj, down);
      addNorm(down, w.layers[l + 1]?.inputNorm ?? w.norm); // the next layer's input norm, or the final one
    });
    return this.lmHead(step);
  }

  /**
   * The LM head on the final norm of the step's sampled rows (the workspace's `normed`, where the
   * last layer left it): the step's logits. Lesson 11's persistent decode ends here too.
   */
  lmHead(step: StepInput): Tensor {
    const S = step.numSampled, ws = this.workspace;
    const last = ws.last.narrow(0, 0, S), logits = ws.logits.narrow(0, 0, S);
    if (S > 0) {
      ops.gatherRows(ws.normed.narrow(0, 0, step.numTokens), step.lastTokenIndex, last);
      ops.matmul(last, this.weights.lmHead, logits, { outDtype: 'f32' });
    }
    return logits;
  }

  /** The first `rows` logits rows the last forward (or graph replay) wrote (a rank's slice on lesson 14). */
  logitsRows(rows: number): Tensor {
    return this.workspace.logits.narrow(0, 0, rows);
  }

  describe(): string[] {
    return [`workspace: ${(this.workspace.bytes / 2 ** 20).toFixed(0)} MiB for steps of up to ${this.ctx.options.maxNumBatchedTokens} tokens, allocated once`, ...(this.parallel?.describe?.() ?? [])];
  }

  dispose(): void {
    this.workspace.dispose();
    this.parallel?.dispose();
    this.attentionScratch?.dispose();
    disposeWeights(this.weights, this.rope);
  }
}

export const fusedStepModel: StepModelFactory = (ctx, attention) => new FusedStepModel(ctx, attention);
