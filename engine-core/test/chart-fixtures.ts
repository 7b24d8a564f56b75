// Fixture records for the chart tests: written to a temp folder by each test,
// never into bench-results/ (they are not measurements).
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { REPO_ROOT, type BenchRecord } from '../src/bench/records.ts';

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

export function tempDir(prefix = 'aios-chart-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
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
