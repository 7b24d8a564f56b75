// Where a rank's forward meets the others: lesson 10's fused forward calls these
// (ParallelHooks) at the three places a sharded Qwen3 layer stack needs its peers.
//
//   embed         the rank looks up the ids of its vocabulary slice (zeros for the rest): all-reduce
//   reduce        after o_proj and down_proj (row-parallel: each rank holds a partial sum): all-reduce,
//                 with the residual add and RMSNorm that follow in the same kernel on the peer path
//   logitsFor     each rank's LM head gives its vocabulary slice of the logits; after the forward
//                 (after a graph's replay, eagerly) either every rank races its slice and the ranks
//                 all-gather one (score, index) pair per row (a step whose rows race over the shards:
//                 shard-race.ts), or they all-gather the f32 logits and [ranks, rows, slice] is laid
//                 out as [rows, vocab] on rank 0, whose sampler takes any row
//
// Two all-reduces per layer and one each for the embedding: 2L + 1 per step, captured
// in a rank's CUDA graph with the rest (the buffers are allocated once, so the forward
// still allocates nothing); the step's one all-gather follows the replay.
import { Tensor, ops } from '@aios/engine-core';
import type { EngineContext, StepPlan } from '@aios/engine-core/engine/types.ts';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';
import type { Shard } from '@aios/engine-core/model/shard.ts';
import type { ParallelHooks } from '@aios/lesson-10-fused-layers';

import type { RankCollectives } from './collectives.ts';
import type { ShardStep } from './shard-race.ts';

/**
 * AIOS_TP_ABLATE=allreduce,gather: a timing experiment, never a result. The named collectives are
 * left out of every step (the sums and the logits are then wrong: the tokens are garbage, the
 * shapes and the kernels the same), so the step's time without them is the time they cost in the
 * step, waits for the slower rank included. The bench's figures of such a run are not records.
 */
export function ablatedCollectives(): Set<'allreduce' | 'gather'> {
  const v = process.env.AIOS_TP_ABLATE;
  const out = new Set<'allreduce' | 'gather'>();
  for (const part of (v ?? '').split(',').filter((p) => p !== '')) {
    if (part !== 'allreduce' && part !== 'gather') throw new Error(`AIOS_TP_ABLATE takes "allreduce" and/or "gather", got "${part}"`);
    out.add(part);
  }
  return out;
}

export class TensorParallelHooks implements ParallelHooks {
  private readonly shard: Shard;
  /** [ranks x rows x slice]: what the all-gather writes. */
  private readonly gathered: Tensor;
  /** [rows, vocab]: rank 0's logits, the slices side by side. */
  private readonly logits: Tensor;
  /** [rows, 2] i32: this rank's race winner per row (score bits, global index); [ranks, rows, 2]: every rank's. */
  private readonly racePairs: Tensor;
  private readonly racePairsAll: Tensor;
  /** sampleTokensShard's scratch, sized for the largest step. */
  private readonly raceWorkspace: Tensor;
  /** Collectives per forward, by kind (the demo prints them). */
  readonly counts = { allReduce: 0, allGather: 0 };
  private readonly ablated = ablatedCollectives();

  constructor(ctx: EngineContext) {
    if (!ctx.shard) throw new Error('TensorParallelHooks: the engine context has no shard');
    this.shard = ctx.shard;
    const { layout, full } = this.shard;
    const rows = ctx.options.maxNumSeqs;
    this.gathered = Tensor.empty([layout.size * rows * layout.vocab], { dtype: 'f32', device: ctx.device });
    // Zeros, not garbage: an ablated gather (AIOS_TP_ABLATE) samples from what is here.
    this.logits = Tensor.zeros([rows, full.vocabSize], { dtype: 'f32', device: ctx.device });
    this.racePairs = Tensor.empty([rows * 2], { dtype: 'i32', device: ctx.device });
    this.racePairsAll = Tensor.zeros([layout.size * rows * 2], { dtype: 'i32', device: ctx.device });
    this.raceWorkspace = Tensor.empty([ops.sampleWorkspaceFloats(rows, layout.vocab, 0)], { dtype: 'f32', device: ctx.device });
  }

  embed(embed: Tensor, ids: Tensor, out: Tensor): void {
    ops.embeddingShard(embed, ids, this.shard.full.vocabSize, this.shard.layout.vocabStart, out);
    this.reduce(out);
  }

  reduce(partial: Tensor): void {
    if (this.ablated.has('allreduce')) return;
    this.shard.comm.allReduce(partial);
    this.counts.allReduce++;
  }

  /** The peer path's all-reduce with addRmsnorm in the same kernel (NcclCollectives), where it takes the shape. */
  reduceAddRmsnorm(partial: Tensor, residual: Tensor, weight: Tensor, eps: number, out: Tensor): boolean {
    const comm = this.shard.comm as Partial<RankCollectives>;
    if (this.ablated.has('allreduce')) return false;
    if (!comm.allReduceAddRmsnorm?.(partial, residual, weight, eps, out)) return false;
    this.counts.allReduce++;
    return true;
  }

  logitsFor(plan: StepPlan, local: Tensor): Tensor {
    const race = (plan as ShardStep).race;
    return race ? this.race(local, race) : this.gather(local);
  }

  /** Each rank's winner of each row over its vocabulary slice, then every rank's pairs on every rank: [ranks, rows, 2] i32. */
  private race(local: Tensor, rows: SampleRowSpec[]): Tensor {
    const { size, vocabStart } = this.shard.layout;
    const S = local.shape[0]!;
    if (rows.length !== S) throw new Error(`TensorParallelHooks: ${rows.length} race rows for ${S} logits rows`);
    const mine = this.racePairs.narrow(0, 0, 2 * S), all = this.racePairsAll.narrow(0, 0, 2 * size * S);
    if (S === 0) return all;
    const params = ops.uploadSampleParams(rows, new Int32Array(0), this.shard.full.vocabSize, local.device);
    try {
      ops.sampleTokensShard(local, params, vocabStart, { out: mine.view(S, 2), workspace: this.raceWorkspace });
    } finally {
      params.dispose(); // freed to the caching allocator: the race, queued before any later use of the block, reads it first
    }
    if (this.ablated.has('gather')) return all;
    this.shard.comm.allGather(mine, all);
    this.counts.allGather++;
    return all;
  }

  private gather(local: Tensor): Tensor {
    const { size, vocab, rank } = this.shard.layout;
    const S = local.shape[0]!;
    if (this.ablated.has('gather')) return this.logits.narrow(0, 0, S);
    const gathered = this.gathered.narrow(0, 0, size * S * vocab);
    this.shard.comm.allGather(local, gathered);
    this.counts.allGather++;
    // Only rank 0 samples: the others skip the re-layout.
    if (rank === 0 && S > 0) ops.copy(gathered.view(size, S, vocab).transpose(0, 1), this.logits.narrow(0, 0, S).view(S, size, vocab));
    return this.logits.narrow(0, 0, S);
  }

  describe(): string[] {
    const { layout, comm, full } = this.shard;
    const kv = layout.kvReplicas > 1 ? `KV head ${layout.kvHeadStart} (each KV head replicated on ${layout.kvReplicas} ranks)` : `KV heads ${layout.kvHeadStart}..${layout.kvHeadStart + layout.kvHeads - 1}`;
    return [
      `tensor parallel: rank ${layout.rank} of ${layout.size} holds q heads ${layout.qHeadStart}..${layout.qHeadStart + layout.qHeads - 1} of ${full.numHeads}, ${kv}, ` +
        `${layout.inter} of ${full.intermediateSize} MLP features, vocabulary rows ${layout.vocabStart}..${layout.vocabStart + layout.vocab - 1}`,
      comm.describe(),
    ];
  }

  dispose(): void {
    for (const t of [this.gathered, this.logits, this.racePairs, this.racePairsAll, this.raceWorkspace]) t.dispose();
  }
}
