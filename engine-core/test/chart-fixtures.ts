// Fixture records for the chart tests: written to a temp folder by each test,
// never into bench-results/ (they are not measurements).
import { copyFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { REPO_ROOT, type BenchRecord, type KernelRecord, type KernelShapeResult, type KernelTiming, type PeerRecord } from '../src/bench/records.ts';
import { scratchDir } from './scratch.ts';

export const COMMITTED_RESULTS = path.join(REPO_ROOT, 'bench-results');

export interface BenchFixture {
  lesson: number;
  tok: number;
  card?: string;
  workload?: string;
  model?: string;
  partial?: boolean;
  date?: string;
  roofline?: number;
}

export function benchRecord(f: BenchFixture): BenchRecord {
  return {
    schema: 1,
    kind: 'bench',
    lesson: f.lesson,
    date: f.date ?? `2030-01-01T00:00:${String(f.lesson).padStart(2, '0')}.000Z`,
    commit: `fixture${f.lesson}`,
    hardware: { backend: 'cuda', card: f.card ?? 'NVIDIA H200', gpuCount: 1, cpuCores: 16 },
    settings: {},
    recipe: `recipe-${f.lesson}`,
    workload: f.workload ?? 'course',
    model: { name: f.model ?? 'qwen3-0.6b-random', dtype: 'bf16', params: 596049920, randomWeights: true },
    partial: f.partial ?? false,
    results: {
      requests: 32,
      finishedRequests: f.partial ? 20 : 32,
      promptTokens: 9000,
      outputTokens: 4096,
      seconds: 4096 / f.tok,
      outputTokPerS: f.tok,
      prefillTokPerS: 10 * f.tok,
      decodeTokPerS: f.tok,
      peakMemoryBytes: 1e9,
    },
    ...(f.roofline !== undefined ? { roofline: { outputTokPerS: f.roofline, basis: 'fixture roofline' } } : {}),
  };
}

/** Another engine's run of a workload, as engine-core/scripts/hf_peer.py writes it. */
export function peerRecord(f: { mode: string; tok: number; date?: string; card?: string; workload?: string; model?: string; version?: string }): PeerRecord {
  return {
    schema: 1,
    kind: 'peer',
    lesson: 11,
    date: f.date ?? '2030-01-02T00:00:00.000Z',
    commit: 'fixture-peer',
    hardware: { backend: 'cuda', card: f.card ?? 'NVIDIA H200', gpuCount: 1, cpuCores: 16 },
    settings: {},
    peer: { library: 'transformers', version: f.version ?? '4.99.0', mode: f.mode },
    workload: f.workload ?? 'course',
    model: { name: f.model ?? 'qwen3-0.6b-random', dtype: 'bf16', randomWeights: true },
    partial: false,
    results: { requests: 32, finishedRequests: 32, promptTokens: 9000, outputTokens: 4096, seconds: 4096 / f.tok, outputTokPerS: f.tok },
  };
}

export function tempDir(prefix = 'aios-chart-'): string {
  return scratchDir(prefix);
}

/** Writes records as <i>_<name>.json into a fresh temp dir (plus any extra files) and returns the dir. */
export function writeFixtures(records: readonly object[], extra: Record<string, string> = {}): string {
  const dir = tempDir();
  records.forEach((r, i) => writeFileSync(path.join(dir, `${String(i).padStart(3, '0')}_fixture.json`), JSON.stringify(r, null, 2)));
  for (const [name, text] of Object.entries(extra)) writeFileSync(path.join(dir, name), text);
  return dir;
}

/** Copies the committed lesson-00 environment record(s) into `dir`; returns their file names. */
export function copyEnvironmentRecords(dir: string): string[] {
  const files = readdirSync(COMMITTED_RESULTS).filter((f) => f.endsWith('.json') && f.includes('_environment_'));
  for (const f of files) copyFileSync(path.join(COMMITTED_RESULTS, f), path.join(dir, f));
  return files;
}

/**
 * The standard fixture: the course workload on an H200 for lessons 3, 4 (partial),
 * 6 (lesson 5 missing) with a roofline; the same workload on an H100 for lessons 3
 * and 4; the throughput workload on the H200 for lesson 6.
 */
export function standardFixture(): BenchRecord[] {
  return [
    benchRecord({ lesson: 3, tok: 100, roofline: 40000 }),
    benchRecord({ lesson: 4, tok: 450, partial: true, roofline: 40000 }),
    benchRecord({ lesson: 6, tok: 9000, roofline: 42000 }),
    benchRecord({ lesson: 3, tok: 80, card: 'NVIDIA H100 80GB HBM3' }),
    benchRecord({ lesson: 4, tok: 200, card: 'NVIDIA H100 80GB HBM3' }),
    benchRecord({ lesson: 6, tok: 20000, workload: 'throughput' }),
  ];
}

export interface KernelFixture {
  card?: string;
  date?: string;
  quick?: boolean;
  /** settings.partial, as bench-kernels writes it for a run cut short. */
  partial?: string;
  family?: string;
  /** Scales every rate (to tell records apart). */
  scale?: number;
}

function timing(version: string, ms: number, rate: { tflops?: number; gbPerS?: number }, extra: Partial<KernelTiming> = {}): KernelTiming {
  return { version, medianMs: ms, minMs: ms * 0.98, maxMs: ms * 1.05, repeats: 30, callsPerRepeat: 2, relErrVsLesson08: version === 'lesson08' ? 0 : 2e-3, ...rate, ...extra };
}

/**
 * A kernel record shaped like bench-kernels.ts writes them: two prefill shapes (the second has no
 * peer and v2 failed on it) and two decode shapes (v3 missing on the first), a copy ceiling.
 */
export function kernelRecord(f: KernelFixture = {}): KernelRecord {
  const k = f.scale ?? 1;
  const shape = (name: string, phase: 'prefill' | 'decode', seqs: number, qLen: number, context: number, versions: KernelTiming[], peer?: KernelTiming): KernelShapeResult => ({
    name, phase, model: '0.6B', qHeads: 16, kvHeads: 8, headDim: 128, seqs, qLen, context,
    flops: 4 * seqs * qLen * context * 128 * 16, kvBytes: 2 * seqs * context * 8 * 128 * 2, versions, ...(peer ? { peer } : {}),
  });
  return {
    schema: 1,
    kind: 'kernel',
    lesson: 9,
    family: f.family ?? 'flash-attention',
    date: f.date ?? '2030-01-01T00:00:00.000Z',
    commit: 'fixturekernel',
    hardware: { backend: 'cuda', card: f.card ?? 'NVIDIA H200', gpuCount: 1, cpuCores: 16 },
    settings: { device: 'cuda:0', dtype: 'bf16', quick: f.quick ?? false, ...(f.partial ? { partial: f.partial } : {}) },
    results: {
      shapes: [
        shape('prefill 0.6B 8x2048', 'prefill', 8, 2048, 2048, [
          timing('lesson08', 19.4, { tflops: 7 * k }), timing('v1', 14.9, { tflops: 9 * k }), timing('v2', 1.14, { tflops: 120 * k }),
        ], timing('torch-sdpa-flash', 0.52, { tflops: 250 * k }, { note: 'enable_gqa=True' })),
        shape('prefill 0.6B 1x16384', 'prefill', 1, 16384, 16384, [
          timing('lesson08', 152, { tflops: 7.5 * k }), timing('v1', 115, { tflops: 9.5 * k }),
          { version: 'v2', medianMs: NaN, minMs: NaN, maxMs: NaN, repeats: 0, callsPerRepeat: 0, error: 'too many <blocks>' },
        ]),
        shape('decode 0.6B batch 1 ctx 1024', 'decode', 1, 1, 1024, [
          timing('lesson08', 0.118, { gbPerS: 35 * k }), timing('v1', 0.091, { gbPerS: 46 * k }), timing('v2', 0.032, { gbPerS: 130 * k }),
        ], timing('torch-sdpa-flash', 0.081, { gbPerS: 51 * k })),
        shape('decode 0.6B batch 64 ctx 4096', 'decode', 64, 1, 4096, [
          timing('lesson08', 0.52, { gbPerS: 2000 * k }), timing('v1', 0.74, { gbPerS: 1450 * k }), timing('v2', 0.74, { gbPerS: 1445 * k }), timing('v3', 0.32, { gbPerS: 3300 * k }),
        ], timing('torch-sdpa-flash', 0.44, { gbPerS: 2400 * k })),
      ],
      ceilings: { copyGbPerS: 4000, lesson00CopyGbPerS: 4177, lesson00Record: 'lesson00.json', peerCopyGbPerS: 4190 },
      peer: { library: 'torch.nn.functional.scaled_dot_product_attention (flash backend)', version: '2.11.0', note: 'sdpa_kernel(FLASH_ATTENTION)' },
    },
  };
}
