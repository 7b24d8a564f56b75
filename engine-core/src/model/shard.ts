// Tensor parallelism's bookkeeping (lesson 14): which part of each weight a rank
// holds, the model shape a rank computes with, and the collectives the ranks
// combine their parts through. The sharding, Megatron-LM's for a decoder layer:
//
//   q/k/v, gate/up   column-parallel: a rank holds a slice of the output rows (whole heads;
//                    its share of the MLP's intermediate features) and needs no communication
//   o, down          row-parallel: a rank holds the matching slice of the input columns and
//                    produces a partial sum of the full output: one all-reduce each
//   embedding        vocab-parallel: a rank holds a slice of the vocabulary's rows, looks up
//                    the ids it holds (zeros for the others), one all-reduce
//   LM head          vocab-parallel: a rank computes its slice of the logits; they are gathered
//
// KV heads are split like the q heads; where there are more ranks than KV heads
// each rank holds one KV head, the one its q heads read (replicated over the
// ranks that share it), as vLLM does.
import type { Qwen3Config } from './config.ts';
import type { Tensor } from '../tensor.ts';
import type { TensorSlice } from './safetensors.ts';

/** How ranks combine tensors. Every rank calls the same collectives in the same order. */
export interface Collectives {
  readonly rank: number;
  readonly size: number;
  /** In place: x = the sum over the ranks of x (the same value on every rank). */
  allReduce(x: Tensor): void;
  /** out [size x input.numel], rank r's input at r x input.numel. */
  allGather(input: Tensor, out: Tensor): void;
  /** In place: x = root's x. */
  broadcast(x: Tensor, root: number): void;
  /**
   * Waits until every queued collective is done, or throws if a peer does not arrive in time
   * (rank 0 calls it before the sampler reads the logits, so a dead rank is an error, not a hang).
   */
  wait(): void;
  /** A host-side meeting of the ranks (start-up: every rank has loaded its weights); throws past the timeout. */
  barrier(what: string, timeoutMs?: number): void;
  /** One line for the demo: what carries the collectives. */
  describe(): string;
  dispose(): void;
}

/** A rank of a tensor-parallel group, as a model running on it sees it. */
export interface Shard {
  layout: ShardLayout;
  comm: Collectives;
  /** The whole model's shape (the engine context's cfg is the rank's). */
  full: Qwen3Config;
}

/** What one rank holds, in heads, features and vocabulary rows. */
export interface ShardLayout {
  rank: number;
  size: number;
  /** Query heads [qHeadStart, qHeadStart + qHeads). */
  qHeadStart: number;
  qHeads: number;
  /** KV heads [kvHeadStart, kvHeadStart + kvHeads): split, or one replicated head when size > numKvHeads. */
  kvHeadStart: number;
  kvHeads: number;
  /** Ranks holding each KV head (1 when the heads are split). */
  kvReplicas: number;
  /** MLP intermediate features [interStart, interStart + inter). */
  interStart: number;
  inter: number;
  /** Vocabulary rows [vocabStart, vocabStart + vocab). */
  vocabStart: number;
  vocab: number;
}

/** The layout of rank `rank` of `size`; a shape that does not divide evenly is an error naming what does not. */
export function shardLayout(cfg: Qwen3Config, rank: number, size: number): ShardLayout {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`tensor parallelism: the number of ranks must be a positive integer, got ${size}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw new RangeError(`tensor parallelism: rank ${rank} is outside [0, ${size})`);
  const { numHeads: Hq, numKvHeads: Hkv, intermediateSize: I, vocabSize: V } = cfg;
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`tensor parallelism over ${size} ranks: ${what}`);
  };
  need(Hq % size === 0, `the ${Hq} query heads do not split evenly`);
  need(I % size === 0, `the ${I} intermediate features do not split evenly`);
  need(V % size === 0, `the vocabulary of ${V} does not split evenly`);
  need(Hkv % size === 0 || size % Hkv === 0, `the ${Hkv} KV heads neither split evenly nor replicate evenly (ranks must divide or be a multiple of them)`);
  const qHeads = Hq / size;
  const kvReplicas = size > Hkv ? size / Hkv : 1;
  const kvHeads = size > Hkv ? 1 : Hkv / size;
  // The KV head(s) this rank's q heads read: q head h reads KV head floor(h / (Hq / Hkv)).
  const kvHeadStart = size > Hkv ? Math.floor(rank / kvReplicas) : rank * kvHeads;
  const inter = I / size, vocab = V / size;
  return { rank, size, qHeadStart: rank * qHeads, qHeads, kvHeadStart, kvHeads, kvReplicas, interStart: rank * inter, inter, vocabStart: rank * vocab, vocab };
}

/**
 * The model shape a rank computes with: its heads, features and vocabulary rows.
 * The KV pool, the workspace and the kernels take their sizes from it unchanged.
 */
export function localConfig(cfg: Qwen3Config, layout: ShardLayout): Qwen3Config {
  return { ...cfg, numHeads: layout.qHeads, numKvHeads: layout.kvHeads, intermediateSize: layout.inter, vocabSize: layout.vocab };
}

/** The slice of stored weight `name` that rank `layout` holds (undefined: the whole tensor, replicated). */
export function weightSlice(name: string, cfg: Qwen3Config, layout: ShardLayout): TensorSlice | undefined {
  const D = cfg.headDim;
  const leaf = name.replace(/^model\.layers\.\d+\./, '');
  switch (leaf) {
    case 'self_attn.q_proj.weight':
      return { dim: 0, start: layout.qHeadStart * D, length: layout.qHeads * D };
    case 'self_attn.k_proj.weight':
    case 'self_attn.v_proj.weight':
      return { dim: 0, start: layout.kvHeadStart * D, length: layout.kvHeads * D };
    case 'self_attn.o_proj.weight':
      return { dim: 1, start: layout.qHeadStart * D, length: layout.qHeads * D };
    case 'mlp.gate_proj.weight':
    case 'mlp.up_proj.weight':
      return { dim: 0, start: layout.interStart, length: layout.inter };
    case 'mlp.down_proj.weight':
      return { dim: 1, start: layout.interStart, length: layout.inter };
    case 'model.embed_tokens.weight':
    case 'lm_head.weight':
      return { dim: 0, start: layout.vocabStart, length: layout.vocab };
    default:
      return undefined; // norms: every rank needs all of them
  }
}
