// The Qwen3 model configuration: parsed from a Hugging Face config.json, or
// taken from a preset with the numbers of the official checkpoints.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import type { Device } from '../backend.ts';
import type { DType } from '../dtype.ts';

export interface Qwen3Config {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** The dtype the checkpoint stores (torch_dtype). */
  dtype: DType;
}

export type PresetName = '0.6B' | '1.7B' | '4B' | '8B' | '14B' | '32B' | 'tiny';

const common = { vocabSize: 151936, rmsNormEps: 1e-6, ropeTheta: 1_000_000, maxPositionEmbeddings: 40960, headDim: 128, dtype: 'bf16' as DType };

/**
 * The official sizes. Source: the config.json of each Hugging Face checkpoint
 * Qwen/Qwen3-0.6B, -1.7B, -4B, -8B, -14B and -32B (all: vocab 151936, head_dim 128,
 * rope_theta 1e6, max_position_embeddings 40960, rms_norm_eps 1e-6, bfloat16).
 * "tiny" is ours: the real vocabulary and tokenizer with toy dimensions, small
 * enough for CI's CPU.
 */
export const PRESETS: Record<PresetName, Qwen3Config> = {
  '0.6B': { ...common, hiddenSize: 1024, numLayers: 28, numHeads: 16, numKvHeads: 8, intermediateSize: 3072, tieWordEmbeddings: true },
  '1.7B': { ...common, hiddenSize: 2048, numLayers: 28, numHeads: 16, numKvHeads: 8, intermediateSize: 6144, tieWordEmbeddings: true },
  '4B': { ...common, hiddenSize: 2560, numLayers: 36, numHeads: 32, numKvHeads: 8, intermediateSize: 9728, tieWordEmbeddings: true },
  '8B': { ...common, hiddenSize: 4096, numLayers: 36, numHeads: 32, numKvHeads: 8, intermediateSize: 12288, tieWordEmbeddings: false },
  '14B': { ...common, hiddenSize: 5120, numLayers: 40, numHeads: 40, numKvHeads: 8, intermediateSize: 17408, tieWordEmbeddings: false },
  '32B': { ...common, hiddenSize: 5120, numLayers: 64, numHeads: 64, numKvHeads: 8, intermediateSize: 25600, tieWordEmbeddings: false },
  tiny: { ...common, hiddenSize: 64, numLayers: 3, numHeads: 4, numKvHeads: 2, headDim: 32, intermediateSize: 160, maxPositionEmbeddings: 4096, tieWordEmbeddings: true },
};

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

const TORCH_DTYPES: Record<string, DType> = { bfloat16: 'bf16', float16: 'f16', float32: 'f32' };

class ConfigError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** Parses a Hugging Face Qwen3 config.json object; `source` names the file in errors. */
export function parseQwen3Config(json: unknown, source = 'config.json'): Qwen3Config {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(source, 'expected a JSON object');
  const c = json as Record<string, unknown>;
  const archs = Array.isArray(c.architectures) ? (c.architectures as unknown[]) : [];
  if (c.model_type !== 'qwen3' && !archs.includes('Qwen3ForCausalLM'))
    throw new ConfigError(source, `not a Qwen3 model (model_type ${JSON.stringify(c.model_type)}, architectures ${JSON.stringify(c.architectures)}); AIOS-TS runs Qwen3 (dense) models`);
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(source, `${key} must be a positive integer, got ${JSON.stringify(c[key])}`);
    return v;
  };
  const num = (key: string): number => {
    const v = c[key];
    if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(source, `${key} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const torchDtype = (c.torch_dtype ?? c.dtype ?? 'bfloat16') as string;
  const dtype = TORCH_DTYPES[torchDtype];
  if (!dtype) throw new ConfigError(source, `torch_dtype ${JSON.stringify(torchDtype)} is not supported (bfloat16, float16 or float32)`);
  if (c.rope_scaling != null) throw new ConfigError(source, 'rope_scaling is not supported yet (plain RoPE only)');
  const cfg: Qwen3Config = {
    hiddenSize,
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads: int('num_key_value_heads', numHeads),
    headDim: int('head_dim', Number.isInteger(hiddenSize / numHeads) ? hiddenSize / numHeads : undefined),
    intermediateSize: int('intermediate_size'),
    vocabSize: int('vocab_size'),
    rmsNormEps: num('rms_norm_eps'),
    ropeTheta: num('rope_theta'),
    maxPositionEmbeddings: int('max_position_embeddings'),
    tieWordEmbeddings: c.tie_word_embeddings === undefined ? false : Boolean(c.tie_word_embeddings),
    dtype,
  };
  validateConfig(cfg, source);
  return cfg;
}

/** Consistency checks shared by parsed configs and presets. */
export function validateConfig(cfg: Qwen3Config, source = 'config'): void {
  if (cfg.numHeads % cfg.numKvHeads !== 0)
    throw new ConfigError(source, `num_attention_heads (${cfg.numHeads}) must be a multiple of num_key_value_heads (${cfg.numKvHeads})`);
  if (cfg.headDim % 2 !== 0) throw new ConfigError(source, `head_dim (${cfg.headDim}) must be even for rotary embeddings`);
  if (cfg.headDim > 1024) throw new ConfigError(source, `head_dim (${cfg.headDim}) is over the supported 1024`);
}

export function loadConfig(dir: string): Qwen3Config {
  const file = path.join(dir, 'config.json');
  if (!existsSync(file)) throw new Error(`${file} not found: a model folder needs a Hugging Face config.json`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  return parseQwen3Config(json, file);
}

/** The config.json a Hugging Face checkpoint of this shape carries. */
export function toHfConfig(cfg: Qwen3Config, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const torchDtype = Object.entries(TORCH_DTYPES).find(([, d]) => d === cfg.dtype)![0];
  return {
    architectures: ['Qwen3ForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    head_dim: cfg.headDim,
    hidden_act: 'silu',
    hidden_size: cfg.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: cfg.intermediateSize,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    max_window_layers: cfg.numLayers,
    model_type: 'qwen3',
    num_attention_heads: cfg.numHeads,
    num_hidden_layers: cfg.numLayers,
    num_key_value_heads: cfg.numKvHeads,
    rms_norm_eps: cfg.rmsNormEps,
    rope_scaling: null,
    rope_theta: cfg.ropeTheta,
    sliding_window: null,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    torch_dtype: torchDtype,
    use_cache: true,
    use_sliding_window: false,
    vocab_size: cfg.vocabSize,
    ...extra,
  };
}

/** Every weight tensor's HF name and shape, in checkpoint order. */
export function weightShapes(cfg: Qwen3Config): [string, number[]][] {
  const { hiddenSize: H, numHeads: Hq, numKvHeads: Hkv, headDim: D, intermediateSize: I, vocabSize: V } = cfg;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [V, H]]];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      [`${p}input_layernorm.weight`, [H]],
      [`${p}self_attn.q_proj.weight`, [Hq * D, H]],
      [`${p}self_attn.k_proj.weight`, [Hkv * D, H]],
      [`${p}self_attn.v_proj.weight`, [Hkv * D, H]],
      [`${p}self_attn.o_proj.weight`, [H, Hq * D]],
      [`${p}self_attn.q_norm.weight`, [D]],
      [`${p}self_attn.k_norm.weight`, [D]],
      [`${p}post_attention_layernorm.weight`, [H]],
      [`${p}mlp.gate_proj.weight`, [I, H]],
      [`${p}mlp.up_proj.weight`, [I, H]],
      [`${p}mlp.down_proj.weight`, [H, I]],
    );
  }
  out.push(['model.norm.weight', [H]]);
  if (!cfg.tieWordEmbeddings) out.push(['lm_head.weight', [V, H]]);
  return out;
}

/** Parameter count (tied embeddings counted once). */
export function paramCount(cfg: Qwen3Config): number {
  return weightShapes(cfg).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
}

/** The dtype a model runs in unless told: the checkpoint's on a GPU, f32 on the CPU backend (its reference kernels are f32). */
export function defaultDtype(device: Device, cfg: Qwen3Config): DType {
  return device === 'cpu' ? 'f32' : cfg.dtype;
}
