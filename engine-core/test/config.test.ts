import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';
import { scratchDir } from './scratch.ts';

import { PRESETS, loadConfig, paramCount, parseQwen3Config, toHfConfig } from '../src/model/config.ts';

// The published parameter counts of the Qwen3 family (model cards: 0.6B has
// 0.6B total and 0.44B non-embedding parameters, etc.), to within rounding.
describe('Qwen3 presets', () => {
  it('have the parameter counts of the published models', () => {
    expect(paramCount(PRESETS['0.6B']) / 1e9).toBeCloseTo(0.596, 3); // Qwen3-0.6B: 596,049,920 with tied embeddings
    expect(paramCount(PRESETS['1.7B']) / 1e9).toBeCloseTo(1.72, 2);
    expect(paramCount(PRESETS['4B']) / 1e9).toBeCloseTo(4.02, 2);
    expect(paramCount(PRESETS['8B']) / 1e9).toBeCloseTo(8.19, 2);
    expect(paramCount(PRESETS['14B']) / 1e9).toBeCloseTo(14.77, 2);
    expect(paramCount(PRESETS['32B']) / 1e9).toBeCloseTo(32.76, 2);
  });

  it('round-trip through a Hugging Face config.json', () => {
    for (const cfg of Object.values(PRESETS)) expect(parseQwen3Config(toHfConfig(cfg))).toEqual(cfg);
  });
});

describe('parseQwen3Config', () => {
  const good = toHfConfig(PRESETS['0.6B']);

  it('rejects models that are not Qwen3', () => {
    expect(() => parseQwen3Config({ ...good, model_type: 'llama', architectures: ['LlamaForCausalLM'] }, 'x/config.json')).toThrow(
      /x\/config.json: not a Qwen3 model \(model_type "llama"/,
    );
  });

  it('rejects inconsistent or missing numbers, naming the field', () => {
    expect(() => parseQwen3Config({ ...good, num_key_value_heads: 5 })).toThrow(/num_attention_heads \(16\) must be a multiple of num_key_value_heads \(5\)/);
    expect(() => parseQwen3Config({ ...good, head_dim: 127 })).toThrow(/head_dim \(127\) must be even/);
    expect(() => parseQwen3Config({ ...good, hidden_size: undefined })).toThrow(/hidden_size must be a positive integer/);
    expect(() => parseQwen3Config({ ...good, vocab_size: -3 })).toThrow(/vocab_size must be a positive integer, got -3/);
    expect(() => parseQwen3Config({ ...good, torch_dtype: 'int8' })).toThrow(/torch_dtype "int8" is not supported/);
    expect(() => parseQwen3Config({ ...good, rope_scaling: { type: 'yarn' } })).toThrow(/rope_scaling is not supported/);
    expect(() => parseQwen3Config([1, 2])).toThrow(/expected a JSON object/);
  });

  it('reads a folder and reports bad files clearly', () => {
    const dir = scratchDir('aios-config-');
    expect(() => loadConfig(dir)).toThrow(/config.json not found/);
    writeFileSync(path.join(dir, 'config.json'), '{ not json');
    expect(() => loadConfig(dir)).toThrow(/config.json: invalid JSON/);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(good));
    expect(loadConfig(dir)).toEqual(PRESETS['0.6B']);
  });
});
