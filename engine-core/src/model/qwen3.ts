// The Qwen3 forward pass, written with the plain ops. One decoder layer:
//
//   h = x + o_proj(attention(rope(q_norm(q_proj(n))), rope(k_norm(k_proj(n))), v_proj(n)))   n = rmsnorm(x)
//   y = h + down_proj(silu(gate_proj(m)) * up_proj(m))                                         m = rmsnorm(h)
//
// Later lessons swap parts without forking this file: the attention backend
// (where K/V come from: recomputed, a cache, a paged pool) is a constructor
// argument, and a layer factory can replace whole layers (fused kernels).
import { type Device, defaultDevice } from '../backend.ts';
import type { DType } from '../dtype.ts';
import * as ops from '../ops.ts';
import { Tensor } from '../tensor.ts';
import { type Qwen3Config, defaultDtype, loadConfig, weightShapes } from './config.ts';
import { type RotaryTables, rotaryTables } from './rope.ts';
import { openCheckpoint } from './safetensors.ts';
import { type ShardLayout, localConfig, weightSlice } from './shard.ts';

export interface LayerWeights {
  inputNorm: Tensor;
  qProj: Tensor;
  kProj: Tensor;
  vProj: Tensor;
  oProj: Tensor;
  qNorm: Tensor;
  kNorm: Tensor;
  postNorm: Tensor;
  gateProj: Tensor;
  upProj: Tensor;
  downProj: Tensor;
}

export interface Qwen3Weights {
  embed: Tensor;
  layers: LayerWeights[];
  norm: Tensor;
  /** The embedding itself when tied. */
  lmHead: Tensor;
}

/** What one forward knows about the tokens it runs; lessons extend it (sequence ids, cache slots...). */
export interface ForwardContext {
  /** i32 [tokens]: each token's position in its sequence. */
  positions: Tensor;
}

/** Where attention gets its keys and values. q [T, Hq, D], k and v [T, Hkv, D] are this forward's tokens. */
export interface AttentionBackend<Ctx extends ForwardContext = ForwardContext> {
  readonly name: string;
  attend(layer: number, q: Tensor, k: Tensor, v: Tensor, ctx: Ctx): Tensor;
}

/** No cache: the forward holds the whole sequence, so its own K/V are all there is. */
export class RecomputeAttention implements AttentionBackend {
  readonly name = 'recompute';
  attend(_layer: number, q: Tensor, k: Tensor, v: Tensor): Tensor {
    return ops.attention(q, k, v);
  }
}

/** Disposes what it collects: one per block of temporaries. */
class Temps {
  private readonly list: Tensor[] = [];
  add<T extends Tensor>(t: T): T {
    this.list.push(t);
    return t;
  }
  dispose(): void {
    for (const t of this.list) t.dispose();
    this.list.length = 0;
  }
}

export class Qwen3DecoderLayer<Ctx extends ForwardContext = ForwardContext> {
  constructor(
    readonly index: number,
    readonly w: LayerWeights,
    readonly cfg: Qwen3Config,
    readonly attention: AttentionBackend<Ctx>,
  ) {}

  /** x [T, H] -> the layer's output [T, H] (a new tensor; x is left as is). */
  forward(x: Tensor, ctx: Ctx, rope: RotaryTables): Tensor {
    const t = new Temps();
    try {
      const n = t.add(ops.rmsnorm(x, this.w.inputNorm, this.cfg.rmsNormEps));
      const o = t.add(this.attentionBlock(n, ctx, rope));
      const h = ops.add(x, o);
      const m = t.add(ops.rmsnorm(h, this.w.postNorm, this.cfg.rmsNormEps));
      const d = t.add(this.mlpBlock(m));
      ops.add(h, d, h); // in place: h is ours
      return h;
    } finally {
      t.dispose();
    }
  }

  /** Normalized x [T, H] -> attention output projected back to [T, H]. */
  attentionBlock(n: Tensor, ctx: Ctx, rope: RotaryTables): Tensor {
    const { numHeads: Hq, numKvHeads: Hkv, headDim: D, rmsNormEps: eps } = this.cfg;
    const T = n.shape[0]!;
    const t = new Temps();
    try {
      // Project, then view as heads: [T, heads * D] -> [T, heads, D] (no copy).
      const q = t.add(ops.matmul(n, this.w.qProj)).view(T, Hq, D);
      const k = t.add(ops.matmul(n, this.w.kProj)).view(T, Hkv, D);
      const v = t.add(ops.matmul(n, this.w.vProj)).view(T, Hkv, D);
      // Qwen3's QK-norm: RMSNorm over each head's D values, before rotary.
      ops.rmsnorm(q, this.w.qNorm, eps, q);
      ops.rmsnorm(k, this.w.kNorm, eps, k);
      ops.rope(q, ctx.positions, rope.cos, rope.sin, q);
      ops.rope(k, ctx.positions, rope.cos, rope.sin, k);
      const a = t.add(this.attention.attend(this.index, q, k, v, ctx));
      return ops.matmul(a.view(T, Hq * D), this.w.oProj);
    } finally {
      t.dispose();
    }
  }

  /** SwiGLU: down(silu(gate(m)) * up(m)). */
  mlpBlock(m: Tensor): Tensor {
    const t = new Temps();
    try {
      const g = t.add(ops.matmul(m, this.w.gateProj));
      const u = t.add(ops.matmul(m, this.w.upProj));
      ops.silu(g, g);
      ops.mul(g, u, g);
      return ops.matmul(g, this.w.downProj);
    } finally {
      t.dispose();
    }
  }
}

export type LayerFactory<Ctx extends ForwardContext> = (
  index: number,
  weights: LayerWeights,
  cfg: Qwen3Config,
  attention: AttentionBackend<Ctx>,
) => Qwen3DecoderLayer<Ctx>;

export interface LoadOptions<Ctx extends ForwardContext> {
  device?: Device;
  /** Compute dtype: defaults to f32 on the CPU (the reference) and the checkpoint's dtype on a GPU. */
  dtype?: DType;
  attention?: AttentionBackend<Ctx>;
  layerFactory?: LayerFactory<Ctx>;
  /** Rotary table length; defaults to the config's max_position_embeddings. */
  maxPositions?: number;
  /**
   * Lesson 14: load only this rank's slice of each weight (shard.ts); the model's
   * cfg is then the rank's local shape. Its forward alone is not the model's:
   * the ranks' partial sums must be combined (lesson 14's model does).
   */
  shard?: ShardLayout;
}

export class Qwen3Model<Ctx extends ForwardContext = ForwardContext> {
  readonly layers: Qwen3DecoderLayer<Ctx>[];

  constructor(
    readonly cfg: Qwen3Config,
    readonly weights: Qwen3Weights,
    readonly rope: RotaryTables,
    readonly device: Device,
    readonly dtype: DType,
    attention: AttentionBackend<Ctx>,
    layerFactory: LayerFactory<Ctx> = (i, w, c, a) => new Qwen3DecoderLayer(i, w, c, a),
  ) {
    this.layers = weights.layers.map((w, i) => layerFactory(i, w, cfg, attention));
  }

  /** Loads config.json and the safetensors weights of a Hugging Face Qwen3 folder onto a device. */
  static load<Ctx extends ForwardContext = ForwardContext>(dir: string, opts: LoadOptions<Ctx> = {}): Qwen3Model<Ctx> {
    const full = loadConfig(dir);
    const device = opts.device ?? defaultDevice();
    const dtype = opts.dtype ?? defaultDtype(device, full);
    const weights = loadWeights(dir, full, device, dtype, opts.shard);
    const cfg = opts.shard ? localConfig(full, opts.shard) : full;
    const rope = rotaryTables(cfg.headDim, cfg.ropeTheta, opts.maxPositions ?? cfg.maxPositionEmbeddings, device);
    const attention = opts.attention ?? (new RecomputeAttention() as unknown as AttentionBackend<Ctx>);
    return new Qwen3Model(cfg, weights, rope, device, dtype, attention, opts.layerFactory);
  }

  /** ids i32 [T] -> hidden states [T, H] after the final norm. */
  forward(ids: Tensor, ctx: Ctx): Tensor {
    let x = ops.embedding(this.weights.embed, ids);
    for (const layer of this.layers) {
      const y = layer.forward(x, ctx, this.rope);
      x.dispose();
      x = y;
    }
    ops.rmsnorm(x, this.weights.norm, this.cfg.rmsNormEps, x);
    return x;
  }

  /** hidden [n, H] -> logits f32 [n, vocab]. */
  logits(hidden: Tensor): Tensor {
    return ops.matmul(hidden, this.weights.lmHead, undefined, { outDtype: 'f32' });
  }

  /**
   * Token ids -> logits (no cache: positions 0..T-1), of every position or,
   * with lastOnly, of the last one ([1, vocab]: the LM head runs on one row).
   */
  forwardLogits(tokenIds: readonly number[], opts: { lastOnly?: boolean } = {}): Tensor {
    const hidden = this.forwardAt(tokenIds, 0, {} as Omit<Ctx, 'positions'>);
    try {
      return this.logits(opts.lastOnly ? hidden.narrow(0, tokenIds.length - 1, 1) : hidden);
    } finally {
      hidden.dispose();
    }
  }

  /**
   * Token ids at positions start, start + 1, ... -> hidden states [T, H]: uploads
   * the ids and their positions, runs forward with the rest of the context, and
   * frees the uploads. What every runner does with a sequence's new tokens.
   */
  forwardAt(tokenIds: readonly number[], start: number, ctx: Omit<Ctx, 'positions'>): Tensor {
    const ids = Tensor.fromArray(Int32Array.from(tokenIds), [tokenIds.length], { dtype: 'i32', device: this.device });
    const positions = Tensor.fromArray(Int32Array.from(tokenIds, (_, i) => start + i), [tokenIds.length], { dtype: 'i32', device: this.device });
    try {
      return this.forward(ids, { ...ctx, positions } as Ctx);
    } finally {
      ids.dispose();
      positions.dispose();
    }
  }

  dispose(): void {
    disposeWeights(this.weights, this.rope);
  }
}

/** Frees a model's weights, whatever its layers hold, and its rotary tables (a tied LM head is the embedding: a second dispose is a no-op). */
export function disposeWeights(w: { embed: Tensor; norm: Tensor; lmHead: Tensor; layers: readonly object[] }, rope: RotaryTables): void {
  for (const t of [w.embed, w.norm, w.lmHead, rope.cos, rope.sin]) t.dispose();
  for (const l of w.layers) for (const t of Object.values(l) as Tensor[]) t.dispose();
}

function loadWeights(dir: string, cfg: Qwen3Config, device: Device, dtype: DType, shard?: ShardLayout): Qwen3Weights {
  const ckpt = openCheckpoint(dir);
  const loaded: Tensor[] = [];
  try {
    const shapes = new Map(weightShapes(cfg));
    const get = (name: string): Tensor => {
      const slice = shard && weightSlice(name, cfg, shard);
      const t = ckpt.load(name, { device, dtype, expectShape: shapes.get(name)!, ...(slice && { slice }) });
      loaded.push(t);
      return t;
    };
    const layers: LayerWeights[] = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      const p = `model.layers.${l}.`;
      layers.push({
        inputNorm: get(`${p}input_layernorm.weight`),
        qProj: get(`${p}self_attn.q_proj.weight`),
        kProj: get(`${p}self_attn.k_proj.weight`),
        vProj: get(`${p}self_attn.v_proj.weight`),
        oProj: get(`${p}self_attn.o_proj.weight`),
        qNorm: get(`${p}self_attn.q_norm.weight`),
        kNorm: get(`${p}self_attn.k_norm.weight`),
        postNorm: get(`${p}post_attention_layernorm.weight`),
        gateProj: get(`${p}mlp.gate_proj.weight`),
        upProj: get(`${p}mlp.up_proj.weight`),
        downProj: get(`${p}mlp.down_proj.weight`),
      });
    }
    const embed = get('model.embed_tokens.weight');
    const norm = get('model.norm.weight');
    // A tied checkpoint may still carry lm_head.weight; the embedding is what the model uses.
    const lmHead = cfg.tieWordEmbeddings ? embed : get('lm_head.weight');
    return { embed, layers, norm, lmHead };
  } catch (e) {
    for (const t of loaded) t.dispose();
    throw e;
  } finally {
    ckpt.close();
  }
}
