// Which model folder a lesson uses: --model DIR, else AIOS_MODEL, else an
// embedded default with seeded random weights, generated on first use into a
// git-ignored cache folder (Qwen3-0.6B's shape on a GPU, a tiny Qwen3 on the CPU).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import type { Device } from '../backend.ts';
import { REPO_ROOT } from '../bench/records.ts';
import { PRESETS, type PresetName } from './config.ts';
import { type RandomModelInfo, isModelDir, writeRandomModel } from './random.ts';

export interface ModelChoice {
  dir: string;
  /** Present when the folder holds seeded random weights. */
  random?: RandomModelInfo;
}

export const DEFAULT_MODELS: Record<'gpu' | 'cpu', { name: string; preset: PresetName; seed: number }> = {
  gpu: { name: 'qwen3-0.6b-random', preset: '0.6B', seed: 0 },
  cpu: { name: 'qwen3-tiny-random', preset: 'tiny', seed: 0 },
};

export function modelCacheDir(): string {
  return process.env.AIOS_CACHE ? path.join(process.env.AIOS_CACHE, 'models') : path.join(REPO_ROOT, '.cache', 'models');
}

/** Reads the random-weights marker our generator writes into config.json (Hugging Face ignores it). */
export function randomWeightsInfo(dir: string): RandomModelInfo | undefined {
  try {
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { aios_random_weights?: RandomModelInfo };
    return cfg.aios_random_weights;
  } catch {
    return undefined;
  }
}

/** Creates (if needed) and returns an embedded default model's folder. */
export function ensureDefaultModel(which: 'gpu' | 'cpu', log: (s: string) => void = console.log): string {
  const spec = DEFAULT_MODELS[which];
  const dir = path.join(modelCacheDir(), spec.name);
  if (!isModelDir(dir)) {
    log(`Creating the default model ${spec.name} (Qwen3 ${spec.preset} shape, random weights, seed ${spec.seed}) in ${dir} ...`);
    const t0 = performance.now();
    writeRandomModel(dir, PRESETS[spec.preset], { preset: spec.preset, seed: spec.seed }, log);
    log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return dir;
}

let warned = false;

/**
 * What a run with random weights says when it starts. The text is noise; the speed is the
 * speed of a model of that shape (a real checkpoint of the same shape does the same work),
 * which for the tiny CPU model is no guide to a real model's speed.
 */
export function randomWeightsNote(name: string, random: RandomModelInfo, from: '--model' | 'AIOS_MODEL' | undefined): string {
  const speed =
    random.preset === 'tiny'
      ? 'the tiny shape (10M parameters) is for checking the code on a CPU: its speed says nothing about a real model'
      : `its speed is that of a real Qwen3 ${random.preset} checkpoint (the same work on the same shapes)`;
  const real = from ? `(it came from ${from}; point ${from} at a real checkpoint folder for real text)` : '(--model DIR or AIOS_MODEL for a real checkpoint)';
  return `Note: ${name} has seeded random weights (Qwen3 ${random.preset} shape, seed ${random.seed}): the generated text is meaningless; ${speed} ${real}.`;
}

/** Resolves the model folder for a run, saying once when its weights are random. */
export function resolveModel(opts: { model?: string; device: Device; log?: (s: string) => void }): ModelChoice {
  const log = opts.log ?? console.log;
  const given = opts.model ?? process.env.AIOS_MODEL;
  let dir: string;
  if (given) {
    dir = path.resolve(given);
    if (!existsSync(dir)) throw new Error(`model folder ${dir} does not exist (from ${opts.model ? '--model' : 'AIOS_MODEL'})`);
    if (!isModelDir(dir)) throw new Error(`${dir} is not a Hugging Face model folder (needs config.json and model.safetensors or model.safetensors.index.json)`);
  } else {
    dir = ensureDefaultModel(opts.device === 'cpu' ? 'cpu' : 'gpu', log);
  }
  const random = randomWeightsInfo(dir);
  if (random && !warned) {
    warned = true;
    log(randomWeightsNote(path.basename(dir), random, given ? (opts.model ? '--model' : 'AIOS_MODEL') : undefined));
  }
  return { dir, random };
}
