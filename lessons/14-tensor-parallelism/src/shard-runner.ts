// A rank's model runner: lesson 07's runner over the rank's shard, with the two
// things a group adds. Its KV pool's block count is the smallest any rank sized
// (the scheduler's block tables index every rank's pool), and on rank 0 each
// step's plan goes to the other ranks before the rank runs it itself, and the
// step is waited for with the group's timeout before the sampler reads it.
import type { Tensor } from '@aios/engine-core';
import type { EngineContext, StepPlan } from '@aios/engine-core/engine/types.ts';
import { BatchedRunner, type PagedAttentionOp, type StepModelFactory } from '@aios/lesson-07-batching';

import { agreeOnMin } from './collectives.ts';
import type { RankGroup } from './rank-group.ts';
import type { StepTrace } from './step-trace.ts';

export class ShardRunner extends BatchedRunner {
  constructor(
    ctx: EngineContext,
    attention: PagedAttentionOp | undefined,
    model: StepModelFactory | undefined,
    /** Rank 0's group (undefined on the other ranks). */
    readonly group?: RankGroup,
    /** AIOS_TP_TRACE=1: the host's timeline of each decode step (printed at dispose). */
    private readonly trace?: StepTrace,
  ) {
    super(ctx, attention, model);
  }

  protected override agreeOnBlocks(numBlocks: number): number {
    const shard = this.ctx.shard;
    if (!shard) throw new Error('ShardRunner: the engine context has no shard');
    return agreeOnMin(shard.comm, numBlocks, this.ctx.device);
  }

  override run(plan: StepPlan): Tensor {
    if (this.group) {
      this.trace?.published();
      this.group.writer.publish(plan);
    }
    this.trace?.seen(plan.phase);
    const logits = super.run(plan);
    this.trace?.queued();
    // A dead peer ends here with the group's timeout instead of in a stream sync that never returns.
    this.ctx.shard?.comm.wait();
    this.trace?.done();
    return logits;
  }

  // The model first: NCCL frees a communicator only once every CUDA graph that captured
  // its collectives is destroyed (the ranks' decode graphs), so the graphs go before
  // the group's communicator. The other order waited forever in ncclCommAbort.
  override dispose(): void {
    if (this.trace) console.error(this.trace.line());
    try {
      super.dispose();
    } finally {
      this.group?.stop();
    }
  }
}
