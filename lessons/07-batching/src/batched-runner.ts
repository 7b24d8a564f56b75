// The batched model runner: turns a step plan into one packed input, runs one
// forward over every token of every scheduled sequence, and returns logits for
// the sequences that sample, computing the LM head on their last tokens only.
// It owns the KV pool (sized at start-up from the memory the weights and a
// warm-up step leave) and the step-input buffer; it keeps nothing per sequence,
// so a finished, aborted or preempted sequence costs it nothing to forget.
import { Tensor, ops } from '@aios/engine-core';
import type { EngineContext, ModelRunner, StepPlan } from '@aios/engine-core/engine/types.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { Qwen3Model } from '@aios/engine-core/model/qwen3.ts';

import { KVPool, type PoolSize, sizePool } from './kv-pool.ts';
import { PackedAttention, type PackedContext, type PagedAttentionOp } from './packed-attention.ts';
import { StepInputBuffer } from './step-input.ts';

export class BatchedRunner implements ModelRunner {
  readonly model: Qwen3Model<PackedContext>;
  readonly pool: KVPool;
  readonly poolSize: PoolSize;
  private readonly input: StepInputBuffer;

  constructor(
    readonly ctx: EngineContext,
    attention: PagedAttentionOp | undefined,
  ) {
    const { cfg, options } = ctx;
    this.model = Qwen3Model.load<PackedContext>(ctx.modelDir, { device: ctx.device, dtype: ctx.dtype, attention: new PackedAttention(attention) });
    const maxBlocksPerSeq = Math.ceil(cfg.maxPositionEmbeddings / options.blockSize);
    this.input = new StepInputBuffer({ maxTokens: options.maxNumBatchedTokens, maxSeqs: options.maxNumSeqs, maxBlocksPerSeq }, options.blockSize, ctx.device);
    this.poolSize = sizePool(ctx, (tokens) => this.warmUp(tokens));
    this.pool = KVPool.forModel(ctx, this.poolSize.numBlocks);
  }

  run(plan: StepPlan): Tensor {
    return this.forward(plan, this.pool);
  }

  private forward(plan: StepPlan, pool: KVPool): Tensor {
    const step = this.input.build(plan);
    const hidden = this.model.forward(step.ids, { positions: step.positions, slotMapping: step.slotMapping, meta: step.meta, pool });
    try {
      // A step of prefill chunks that all stop short of their last token samples nothing.
      if (step.numSampled === 0) return Tensor.empty([0, this.ctx.cfg.vocabSize], { dtype: 'f32', device: this.ctx.device });
      const last = ops.gatherRows(hidden, step.lastTokenIndex);
      try {
        return this.model.logits(last);
      } finally {
        last.dispose();
      }
    } finally {
      hidden.dispose();
    }
  }

  /**
   * A full step of `tokens` prompt tokens through a scratch pool, so the
   * allocator's peak shows a full step's activations; returns the scratch
   * pool's bytes (they are not activations).
   */
  private warmUp(tokens: number): number {
    const { cfg, options } = this.ctx;
    const perSeq = Math.min(tokens, cfg.maxPositionEmbeddings);
    const seqs: Sequence[] = [];
    for (let left = tokens; left > 0; left -= perSeq)
      seqs.push(new Sequence(Array.from({ length: Math.min(perSeq, left) }, (_, i) => (i * 7919 + seqs.length) % cfg.vocabSize), new SamplingParams({ maxTokens: 1 })));
    const scratch = KVPool.forModel(this.ctx, seqs.reduce((n, s) => n + Math.ceil(s.length / options.blockSize), 0));
    let next = 0;
    const blockTables = seqs.map((s) => Array.from({ length: Math.ceil(s.length / options.blockSize) }, () => next++));
    try {
      this.forward({ sequences: seqs, newTokens: seqs.map((s) => s.length), phase: 'prefill', blockTables }, scratch).dispose();
      return scratch.bytes;
    } finally {
      scratch.dispose();
    }
  }

  release(): void {}

  dispose(): void {
    this.input.dispose();
    this.pool.dispose();
    this.model.dispose();
  }
}
