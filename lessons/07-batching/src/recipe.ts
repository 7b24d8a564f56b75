// Lesson 07: lesson 06's engine with the one-at-a-time scheduler and runner
// replaced: a static-batch scheduler that owns the block manager, and a runner
// that owns the KV pool and runs every scheduled sequence in one packed forward.
// The sampler stays lesson 03's.
import type { EngineContext, EngineParts, Recipe, Sampler } from '@aios/engine-core/engine/types.ts';
import { HostSampler } from '@aios/lesson-03-baseline-engine';
import { BlockManager, KVPool, poolLine } from '@aios/lesson-06-paged-kv-cache';

import { BatchedRunner } from './batched-runner.ts';
import type { PagedAttentionOp } from './packed-attention.ts';
import type { StepModelFactory } from './step-model.ts';
import { type PagedScheduler, type SchedulerLimits, StaticBatchScheduler } from './static-batch-scheduler.ts';

/** The swappable parts of a batched engine: later lessons replace one each (08 the scheduler, 09 the attention, 10 the model, 12 the sampler, 13 the scheduler with its block manager). */
export interface BatchedParts {
  /** Builds the scheduler around the block manager of the pool the runner sized. */
  scheduler: (blocks: BlockManager, limits: SchedulerLimits) => PagedScheduler;
  /** Undefined: lesson 06's BlockManager (lesson 13 brings one that shares cached prefix blocks, with its scheduler). */
  blockManager?: (numBlocks: number, blockSize: number) => BlockManager;
  /** Undefined: the straightforward paged-attention kernel. */
  attention?: PagedAttentionOp;
  /** Undefined: engine-core's Qwen3 forward, op by op (PlainStepModel). */
  model?: StepModelFactory;
  /** Undefined: lesson 03's HostSampler. */
  sampler?: (ctx: EngineContext) => Sampler;
  /** Undefined: BatchedRunner. Lesson 14's runner also hands each step to the other ranks. */
  runner?: (ctx: EngineContext, attention: PagedAttentionOp | undefined, model: StepModelFactory | undefined) => BatchedRunner;
}

export const lesson07Parts: BatchedParts = {
  scheduler: (blocks, limits) => new StaticBatchScheduler(blocks, limits),
};

export function batchedRecipe(name: string, lesson: number, summary: string, parts: BatchedParts): Recipe {
  return {
    name,
    lesson,
    summary,
    shape: 'batched',
    build(ctx: EngineContext): EngineParts {
      const runner = parts.runner ? parts.runner(ctx, parts.attention, parts.model) : new BatchedRunner(ctx, parts.attention, parts.model);
      try {
        const { options } = ctx;
        const blocks = parts.blockManager ? parts.blockManager(runner.pool.numBlocks, options.blockSize) : new BlockManager(runner.pool.numBlocks, options.blockSize);
        const scheduler = parts.scheduler(blocks, { maxNumSeqs: options.maxNumSeqs, maxNumBatchedTokens: options.maxNumBatchedTokens });
        const bytesPerToken = KVPool.bytesPerToken(runner.pool.shape);
        return {
          runner,
          scheduler,
          sampler: parts.sampler ? parts.sampler(ctx) : new HostSampler(),
          kvStats: () => ({ reservedBytes: scheduler.reservedBlocks() * options.blockSize * bytesPerToken, usedBytes: blocks.usedTokens * bytesPerToken }),
          describe: () => [
            poolLine(runner.pool, runner.poolBasis),
            `limits: ${options.maxNumSeqs} sequences and ${options.maxNumBatchedTokens} tokens per step`,
            ...(runner.model.describe?.() ?? []),
          ],
          dispose: () => runner.dispose(),
        };
      } catch (e) {
        runner.dispose();
        throw e;
      }
    },
  };
}

export const recipe: Recipe = batchedRecipe('batching', 7, 'static batches: many sequences per forward, admitted together, run until all finish', lesson07Parts);
