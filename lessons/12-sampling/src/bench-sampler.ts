// The sampler micro-benchmark: ops.sampleTokens at the throughput workload's shape
// (256 rows x Qwen3's 151,936-entry vocabulary, f32 logits: 156 MB a step), path
// by path, with lesson 03-11's ops.sampleRows beside it on the same logits.
//
//   tsx lessons/12-sampling/src/bench-sampler.ts [--device cuda:0] [--rows 256] [--vocab 151936] [--iters 30] [--out FILE.json]
//
// Each figure is the median over `iters` calls of the device time between CUDA events
// recorded before and after one call (so it includes the call's parameter upload),
// after 3 warm-up calls. GB/s counts one read of the logits (rows x vocab x 4 bytes):
// the plain paths read each row once; the filtered paths read it more (their
// threshold passes), and their GB/s says how far that puts them from one read.
// The card's copy bandwidth from its lesson-00 record is printed beside them when one exists.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { Tensor, ops } from '@aios/engine-core';
import { DeviceTimer, parseDevice, synchronize } from '@aios/engine-core/backend.ts';
import { cardRates } from '@aios/engine-core/bench/harness.ts';
import { hardwareInfo } from '@aios/engine-core/bench/records.ts';
import type { SampleRowSpec } from '@aios/engine-core/ops.ts';
import { mulberry32 } from '@aios/engine-core/random.ts';

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cuda:0' },
    rows: { type: 'string', default: '256' },
    vocab: { type: 'string', default: '151936' },
    iters: { type: 'string', default: '30' },
    out: { type: 'string' },
  },
});
const device = parseDevice(values.device!);
if (device === 'cpu') throw new Error('bench-sampler: a CUDA device is needed (the CPU reference is not what this times)');
const R = Number(values.rows), V = Number(values.vocab), iters = Number(values.iters);

const base: SampleRowSpec = { temperature: 0.6, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, seed: 0, position: 0, logprobs: -1 };
const PENALTY_TOKENS = 1000; // a 1k-token history per row: about the throughput workload's prompts

const paths: [string, Partial<SampleRowSpec>, boolean][] = [
  ['greedy', { temperature: 0 }, false],
  ['temperature 0.6', {}, false],
  ['min-p 0.05', { minP: 0.05 }, false],
  ['top-k 50', { topK: 50 }, false],
  ['top-p 0.9', { topP: 0.9 }, false],
  ['top-k 50 + top-p 0.9 + min-p 0.05', { topK: 50, topP: 0.9, minP: 0.05 }, false],
  [`penalties (${PENALTY_TOKENS} tokens a row)`, { repetitionPenalty: 1.1, presencePenalty: 0.5, frequencyPenalty: 0.5 }, true],
  ['log-probs (20 alternatives)', { logprobs: 20 }, false],
];

const rand = mulberry32(1);
const host = new Float32Array(R * V);
for (let i = 0; i < host.length; i++) host[i] = (rand() * 2 - 1) * 8;
const logits = Tensor.fromArray(host, [R, V], { device });
const penalties = new Int32Array(4 * R * PENALTY_TOKENS);
for (let r = 0, w = 0; r < R; r++) for (let j = 0; j < PENALTY_TOKENS; j++) penalties.set([r, (r * 7919 + j * 131) % V, j % 3, j % 2], 4 * w++);
const timer = new DeviceTimer(device);
const bytes = R * V * 4;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function time(call: () => Tensor): number {
  for (let i = 0; i < 3; i++) call().dispose();
  synchronize(device);
  const ms: number[] = [];
  for (let i = 0; i < iters; i++) {
    timer.start();
    const out = call();
    ms.push(timer.stopMs());
    out.dispose();
  }
  return median(ms);
}

const results: { path: string; us: number; gbPerS: number }[] = [];
const report = (path: string, ms: number) => {
  const r = { path, us: ms * 1000, gbPerS: bytes / (ms / 1000) / 1e9 };
  results.push(r);
  console.log(`${path.padEnd(44)} ${r.us.toFixed(1).padStart(9)} us  ${r.gbPerS.toFixed(0).padStart(6)} GB/s (one read of the logits)`);
};

const hw = hardwareInfo(device);
const rates = cardRates(hw.card);
console.log(`sampler micro-benchmark on ${hw.card}: ${R} rows x ${V} f32 logits = ${(bytes / 1e6).toFixed(1)} MB a step; median of ${iters} calls (device events, parameter upload included)`);
if (rates) console.log(`the card's copy bandwidth (lesson 00, ${rates.source}): ${rates.bandwidthGBps.toFixed(0)} GB/s`);

// Lesson 03-11's sampler kernel at the same temperature (its host side draws the uniforms).
const temps = Tensor.fromArray(new Float32Array(R).fill(0.6), [R], { device });
const uniforms = Tensor.fromArray(Float32Array.from({ length: R }, () => rand()), [R], { device });
report('lessons 03-11 sampleRows, temperature 0.6', time(() => ops.sampleRows(logits, temps, uniforms)));
for (const [name, over, penalized] of paths) {
  const rows = Array.from({ length: R }, (_, r) => ({ ...base, ...over, seed: r, position: 500 + r }));
  report(`sampleTokens, ${name}`, time(() => ops.sampleTokens(logits, rows, penalized ? penalties : undefined)));
}
if (values.out)
  writeFileSync(values.out, JSON.stringify({ card: hw.card, rows: R, vocab: V, iters, logitsBytes: bytes, copyGBps: rates?.bandwidthGBps, results }, null, 2) + '\n');
for (const t of [logits, temps, uniforms]) t.dispose();
