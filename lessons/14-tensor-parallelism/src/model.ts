// Lesson 14's model: lesson 11's (decode replayed from CUDA graphs over lesson
// 10's fused forward) with the tensor-parallel hooks, on a rank's shard. Without
// a shard (one rank) it is lesson 11's model unchanged. AIOS_TP_EAGER=1 runs the
// ranks' decode steps eagerly (lesson 10's forward with the hooks, no graphs): the
// way to tell a capture problem from a sharding one.
//
// Each rank captures its own graphs, collectives included (NCCL supports capture:
// the collective's kernel goes into the graph and runs, with its peers', when the
// ranks replay their graphs of the same step). What a group adds to lesson 11's
// capture, so that a capture problem never hangs the ranks:
//   - between captures a rank waits for its stream with a deadline (captureTimeoutMs),
//     not an unbounded synchronize: a peer that is not there ends in an error;
//   - after every capture the ranks vote: if any rank could not capture, every rank
//     drops its graphs and decodes eagerly (the same choice everywhere, or the ranks
//     would run different collectives), and the demo line says why;
//   - once captured, the ranks replay their smallest graph once and wait with the
//     deadline: a replay that does not finish stops start-up with a message.
import { native } from '@aios/engine-core';
import type { EngineContext } from '@aios/engine-core/engine/types.ts';
import type { KVPool, PagedAttentionOp, StepInputBuffer, StepModel, StepModelFactory } from '@aios/lesson-07-batching';
import { FusedStepModel, type ParallelHooks } from '@aios/lesson-10-fused-layers';
import { GraphStepModel, graphStepModel } from '@aios/lesson-11-cuda-graphs';

import { type RankCollectives, isRankCollectives } from './collectives.ts';
import { TensorParallelHooks } from './parallel-hooks.ts';
import { captureTimeoutMs, startupTimeoutMs } from './rank-group.ts';

/**
 * One capture on every rank, then a vote: each rank keeps its graph only if all
 * captured. `attempt` returns the graph or throws; on a refusal anywhere the rank's
 * own graph (if it made one) is disposed and the reason returned.
 */
export function captureAgreed<G extends { dispose(): void }>(comm: RankCollectives, attempt: () => G, what: string, timeoutMs?: number): { graph?: G; reason?: string } {
  let graph: G | undefined, mine: string | undefined;
  try {
    graph = attempt();
  } catch (e) {
    mine = `rank ${comm.rank} could not capture ${what}: ${e instanceof Error ? e.message : String(e)}`;
  }
  const vote = comm.agree(mine === undefined, what, timeoutMs);
  if (vote.ok) return { graph };
  graph?.dispose();
  return { reason: mine ?? `rank ${vote.refusedBy} could not capture ${what}` };
}

export class TensorParallelGraphModel extends GraphStepModel {
  private readonly comm: RankCollectives;

  constructor(ctx: EngineContext, attention: PagedAttentionOp | undefined, hooks: ParallelHooks) {
    super(ctx, attention, hooks);
    const comm = ctx.shard?.comm;
    if (!comm || !isRankCollectives(comm)) throw new Error('TensorParallelGraphModel: the engine context has no rank collectives');
    this.comm = comm;
  }

  override prepare(pool: KVPool, input: StepInputBuffer): void {
    super.prepare(pool, input);
    const first = this.graphs()[0];
    if (!first) return;
    // Every rank replays the same (smallest) graph: its collectives meet their peers'.
    first.launch();
    try {
      this.settle();
    } catch (e) {
      throw new Error(`rank ${this.comm.rank}: replaying the first decode graph (its collectives included) did not finish: ${e instanceof Error ? e.message : String(e)}. AIOS_TP_EAGER=1 decodes eagerly on the ranks`);
    }
  }

  protected override settle(): void {
    this.comm.wait(captureTimeoutMs());
  }

  protected override capture(record: () => void): InstanceType<typeof native.Graph> | undefined {
    const result = captureAgreed(this.comm, () => {
      const g = super.capture(record);
      if (!g) throw new Error('no graph was recorded');
      return g;
    }, 'a decode graph', captureTimeoutMs());
    if (result.reason) {
      this.eagerBecause = result.reason;
      if (this.comm.rank !== 0) console.warn(`lesson 14: ${result.reason}; decode runs eagerly`);
    }
    return result.graph;
  }
}

export const tensorParallelModel: StepModelFactory = (ctx, attention) => {
  if (!ctx.shard) return graphStepModel(ctx, attention);
  const hooks = new TensorParallelHooks(ctx);
  let model: StepModel;
  try {
    model = process.env.AIOS_TP_EAGER === '1' ? new FusedStepModel(ctx, attention, hooks) : new TensorParallelGraphModel(ctx, attention, hooks);
  } catch (e) {
    hooks.dispose();
    throw e;
  }
  try {
    // Every rank has its weights before any rank runs a forward: a rank that failed to load
    // stops the others here, with its message, before a collective waits for it.
    ctx.shard.comm.barrier('weights loaded', startupTimeoutMs());
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
};

