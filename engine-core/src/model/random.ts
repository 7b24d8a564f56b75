// Seeded random-weight Qwen3 checkpoints in Hugging Face layout, so every
// lesson runs with no download: the text is meaningless, the speed is real.
//
// Weights are uniform with the standard deviation of Qwen's initializer
// (initializer_range 0.02), so activations keep a realistic scale through all
// layers; norm weights are 1 plus a small perturbation (a real init has exact
// ones, which would hide a norm that forgets its weight from the golden test).
import { closeSync, copyFileSync, existsSync, ftruncateSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

import { type Qwen3Config, toHfConfig, weightShapes } from './config.ts';
import { safetensorsLayout, writeSafetensors } from './safetensors.ts';
import { xoshiro128 } from '../random.ts';
import { qwen3TokenizerDir } from '../tokenizer.ts';

export interface RandomModelInfo {
  preset: string;
  seed: number;
}

function hashName(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

const INIT_STD = 0.02;

/** Fills `out` with the bf16 bits of uniform values in [center - halfWidth, center + halfWidth). */
function fillBf16(out: Uint16Array, next: () => number, center: number, halfWidth: number): void {
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < out.length; i++) {
    f[0] = center + (next() / 4294967296 * 2 - 1) * halfWidth;
    const bits = u[0]!;
    out[i] = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16; // round to nearest even
  }
}

/** The bf16 values of one weight, produced in chunks so a 1.2 GB checkpoint never sits in memory. */
export function* randomWeightChunks(name: string, numel: number, seed: number, chunkElems = 1 << 22): Generator<Uint16Array> {
  const next = xoshiro128((seed ^ hashName(name)) >>> 0);
  const isNorm = name.endsWith('norm.weight');
  // Uniform on [-a, a] has standard deviation a / sqrt(3).
  const [center, halfWidth] = isNorm ? [1, 0.2] : [0, INIT_STD * Math.sqrt(3)];
  for (let done = 0; done < numel; done += chunkElems) {
    const chunk = new Uint16Array(Math.min(chunkElems, numel - done));
    fillBf16(chunk, next, center, halfWidth);
    yield chunk;
  }
}

/**
 * Writes a Hugging Face style folder: config.json, generation_config.json,
 * model.safetensors (bf16, HF tensor names) and the real Qwen3 tokenizer files.
 * Written to a temporary folder and renamed into place, so an interrupted run
 * never leaves a half-written model that looks complete.
 */
export function writeRandomModel(outDir: string, cfg: Qwen3Config, info: RandomModelInfo, log: (s: string) => void = () => {}, opts: { jobs?: number } = {}): void {
  if (cfg.dtype !== 'bf16') throw new Error('writeRandomModel: random checkpoints are written in bf16');
  const tmp = `${outDir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(toHfConfig(cfg, { aios_random_weights: info }), null, 2) + '\n');
    writeFileSync(
      path.join(tmp, 'generation_config.json'),
      JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643], pad_token_id: 151643, do_sample: false }, null, 2) + '\n',
    );
    const tokDir = qwen3TokenizerDir();
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(tokDir, f), path.join(tmp, f));
    const shapes = weightShapes(cfg);
    const total = shapes.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
    const metadata = { format: 'pt', aios_random_weights: JSON.stringify(info) };
    if ((opts.jobs ?? 1) > 1) {
      writeWeightsParallel(path.join(tmp, 'model.safetensors'), shapes, info.seed, metadata, opts.jobs!, total, log);
      rmSync(outDir, { recursive: true, force: true });
      renameSync(tmp, outDir);
      return;
    }
    let written = 0, lastPct = -1;
    writeSafetensors(
      path.join(tmp, 'model.safetensors'),
      shapes.map(([name, shape]) => {
        const numel = shape.reduce((a, b) => a * b, 1);
        return {
          name,
          dtype: 'bf16' as const,
          shape,
          chunks: () => {
            const it = randomWeightChunks(name, numel, info.seed);
            return (function* () {
              for (const c of it) {
                written += c.length;
                const pct = Math.floor((100 * written) / total);
                if (pct >= lastPct + 10) {
                  lastPct = pct;
                  log(`  writing weights: ${pct}%`);
                }
                yield c;
              }
            })();
          },
        };
      }),
      metadata,
    );
    rmSync(outDir, { recursive: true, force: true });
    renameSync(tmp, outDir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * The same file as writeSafetensors writes for these weights, filled by `jobs`
 * worker threads: each takes the next tensor (largest first) and writes its values
 * at the tensor's offset. Each tensor's values are its own seeded stream, so the
 * order the tensors are computed in changes no byte (a test compares the two files).
 * The 32B shape's 64 GB takes minutes on one core.
 */
function writeWeightsParallel(file: string, shapes: [string, number[]][], seed: number, metadata: Record<string, string>, jobs: number, total: number, log: (s: string) => void): void {
  const layout = safetensorsLayout(shapes.map(([name, shape]) => ({ name, dtype: 'BF16' as const, shape })), metadata);
  const fd = openSync(file, 'w');
  try {
    for (let done = 0; done < layout.prefix.length; ) done += writeSync(fd, layout.prefix, done, layout.prefix.length - done, done);
    ftruncateSync(fd, layout.prefix.length + layout.dataBytes);
  } finally {
    closeSync(fd);
  }
  const tensors = shapes
    .map(([name, shape], i) => ({ name, numel: shape.reduce((a, b) => a * b, 1), offset: layout.offsets[i]! }))
    .sort((a, b) => b.numel - a.numel);
  // [0] next tensor, [1] failed, [2] workers finished, [3] progress (64 Ki values); a message from byte 32.
  const statusBuf = new SharedArrayBuffer(32 + 1024);
  const status = new Int32Array(statusBuf, 0, 8);
  const workers = Array.from({ length: jobs }, () => new Worker(new URL('./random-boot.mjs', import.meta.url), { workerData: { file, seed, tensors, status: statusBuf } }));
  let lastPct = -1;
  for (let n; (n = Atomics.load(status, 2)) < jobs; ) {
    Atomics.wait(status, 2, n, 1000);
    const pct = Math.floor((100 * Atomics.load(status, 3) * 2 ** 16) / total);
    if (pct >= lastPct + 10 && pct <= 100) {
      lastPct = pct;
      log(`  writing weights (${jobs} threads): ${pct}%`);
    }
  }
  for (const w of workers) void w.terminate();
  if (Atomics.load(status, 1) !== 0) {
    const bytes = new Uint8Array(statusBuf, 32, 1024);
    throw new Error(`writing the random weights failed: ${new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0) < 0 ? 1024 : bytes.indexOf(0)))}`);
  }
}

/** True when a folder holds a complete model (what writeRandomModel leaves behind). */
export function isModelDir(dir: string): boolean {
  return existsSync(path.join(dir, 'config.json')) && (existsSync(path.join(dir, 'model.safetensors')) || existsSync(path.join(dir, 'model.safetensors.index.json')));
}
