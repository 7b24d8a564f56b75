// Where a rank's forward meets the others: lesson 10's fused forward calls these
// (ParallelHooks) at the three places a sharded Qwen3 layer stack needs its peers.
//
//   embed         the rank looks up the ids of its vocabulary slice (zeros for the rest): all-reduce
//   reduce        after o_proj and down_proj (row-parallel: each rank holds a partial sum): all-reduce,
//                 with the residual add and RMSNorm that follow in the same kernel on the peer path
//   gatherLogits  each rank's LM head gives its vocabulary slice of the logits: all-gather, then
//                 [ranks, rows, slice] is laid out as [rows, vocab] on rank 0, which samples
//
// Two all-reduces per layer and one each for the embedding: 2L + 1 per step.
// The buffers are allocated once, so the forward still allocates nothing and a
// rank's CUDA graph captures its collectives with the rest.
import { Tensor, ops } from '@aios/engine-core';
import type { EngineContext } from '@aios/engine-core/engine/types.ts';
import type { Shard } from '@aios/engine-core/model/shard.ts';
import type { ParallelHooks } from '@aios/lesson-10-fused-layers';

import type { RankCollectives } from './collectives.ts';

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

  gatherLogits(local: Tensor): Tensor {
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

  logitsRows(rows: number): Tensor {
    return this.logits.narrow(0, 0, rows);
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
    this.gathered.dispose();
    this.logits.dispose();
  }
}
