// A rank's model runner: lesson 07's runner over the rank's shard, with the
// things a group adds. Its KV pool's block count is the smallest any rank sized
// (the scheduler's block tables index every rank's pool), and on rank 0 each
// step's plan goes to the other ranks before the rank runs it itself, with the
// sampled rows' parameters when the sampler staged a race over the vocabulary
// shards (shard-race.ts), and the step is waited for with the group's timeout
// before the sampler reads it.
import type { Tensor } from '@aios/engine-core';
import type { EngineContext } from '@aios/engine-core/engine/types.ts';
import { BatchedRunner, type PagedAttentionOp, type StepModelFactory } from '@aios/lesson-07-batching';

import { agreeOnMin } from './collectives.ts';
import type { RankGroup } from './rank-group.ts';
import type { RaceSlot, ShardStep } from './shard-race.ts';
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
    /** Rank 0: where its sampler leaves a step's race (undefined: every step gathers its logits). */
    private readonly raceSlot?: RaceSlot,
  ) {
    super(ctx, attention, model);
  }

  protected override agreeOnBlocks(numBlocks: number): number {
    const shard = this.ctx.shard;
    if (!shard) throw new Error('ShardRunner: the engine context has no shard');
    return agreeOnMin(shard.comm, numBlocks, this.ctx.device);
  }

  /** Rank 0 runs the scheduler's plan; the other ranks the plans it hands on (which carry their race). */
  override run(plan: ShardStep): Tensor {
    const race = this.raceSlot?.take(plan);
    const step: ShardStep = race ? { ...plan, race } : plan;
    if (this.group) {
      this.trace?.published();
      this.group.writer.publish(step);
    }
    this.trace?.seen(step.phase);
    const logits = super.run(step);
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
