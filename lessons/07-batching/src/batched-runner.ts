// The batched model runner: turns a step plan into one packed input, runs one
// forward over every token of every scheduled sequence, and returns logits for
// the sequences that sample, computing the LM head on their last tokens only.
// It owns the KV pool (sized at start-up from the memory the weights and a
// warm-up step leave) and the step-input buffer; it keeps nothing per sequence,
// so a finished, aborted or preempted sequence costs it nothing to forget.
import type { Tensor } from '@aios/engine-core';
import type { EngineContext, ModelRunner, StepPlan } from '@aios/engine-core/engine/types.ts';
import { Sequence } from '@aios/engine-core/engine/sequence.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';

import { type KVPool, poolFor, sizePool } from './kv-pool.ts';
import type { PagedAttentionOp } from './packed-attention.ts';
import { StepInputBuffer } from './step-input.ts';
import { type StepModel, type StepModelFactory, plainStepModel } from './step-model.ts';

export class BatchedRunner implements ModelRunner {
  readonly model: StepModel;
  readonly pool: KVPool;
  /** How the pool's size was chosen (sizePool), for the demo's line. */
  readonly poolBasis: string;
  private readonly input: StepInputBuffer;

  constructor(
    readonly ctx: EngineContext,
    attention: PagedAttentionOp | undefined,
    model: StepModelFactory = plainStepModel,
  ) {
    const { cfg, options } = ctx;
    this.model = model(ctx, attention);
    const maxBlocksPerSeq = Math.ceil(cfg.maxPositionEmbeddings / options.blockSize);
    this.input = new StepInputBuffer({ maxTokens: options.maxNumBatchedTokens, maxSeqs: options.maxNumSeqs, maxBlocksPerSeq }, options.blockSize, ctx.device);
    const size = sizePool(ctx, (tokens) => this.warmUp(tokens));
    const numBlocks = this.agreeOnBlocks(size.numBlocks);
    this.poolBasis = numBlocks === size.numBlocks ? size.basis : `${size.basis}; ${numBlocks} blocks agreed with the other ranks`;
    this.pool = poolFor(ctx, numBlocks);
    this.model.prepare?.(this.pool, this.input);
  }

  /**
   * The pool's block count given what this process sized: the same here. Lesson 14's
   * ranks each size their own pool and must agree on one count (the scheduler's
   * block tables index every rank's pool), so its runner overrides this.
   */
  protected agreeOnBlocks(numBlocks: number): number {
    return numBlocks;
  }

  run(plan: StepPlan): Tensor {
    return this.forward(plan, this.pool);
  }

  private forward(plan: StepPlan, pool: KVPool): Tensor {
    return this.model.forward(plan, this.input, pool);
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
    const scratch = poolFor(this.ctx, seqs.reduce((n, s) => n + Math.ceil(s.length / options.blockSize), 0));
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
