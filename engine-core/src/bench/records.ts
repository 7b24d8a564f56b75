// Results records: one JSON file per measured run under bench-results/, with
// the card, the commit, the settings and the date, so every number in a README
// or on the chart can be traced to the run that produced it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { type Device, deviceIndex, native } from '../backend.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const RESULTS_DIR = process.env.AIOS_RESULTS_DIR ?? path.join(REPO_ROOT, 'bench-results');

export interface HardwareInfo {
  backend: 'cpu' | 'cuda';
  /** The GPU's name, or the CPU model on the CPU backend. */
  card: string;
  gpuCount: number;
  driverVersion?: string;
  cudaRuntime?: string;
  computeCapability?: string;
  smCount?: number;
  memoryBytes?: number;
  cpuCores: number;
}

export interface RecordBase {
  schema: 1;
  kind: string;
  lesson: number;
  date: string;
  commit: string;
  hardware: HardwareInfo;
  settings: Record<string, unknown>;
}

function cudaVersion(v: number | undefined): string | undefined {
  return v ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : undefined;
}

export function hardwareInfo(device: Device): HardwareInfo {
  const info = native.backendInfo();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  if (device === 'cpu') return { backend: 'cpu', card: cpu.trim(), gpuCount: info.deviceCount, cpuCores: os.cpus().length };
  const d = native.deviceInfo(deviceIndex(device));
  return {
    backend: 'cuda',
    card: d.name,
    gpuCount: info.deviceCount,
    driverVersion: cudaVersion(info.driverVersion),
    cudaRuntime: cudaVersion(info.runtimeVersion),
    computeCapability: d.computeCapability,
    smCount: d.smCount,
    memoryBytes: d.totalMemory,
    cpuCores: os.cpus().length,
  };
}

/** The commit being measured: AIOS_COMMIT (set where .git is absent, as on the GPU host) or git's HEAD, "+dirty" if changed. */
export function currentCommit(): string {
  if (process.env.AIOS_COMMIT) return process.env.AIOS_COMMIT;
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/** Writes a record as bench-results/<date>_lesson<NN>_<kind>_<card>.json (or into `dir`) and returns its path. */
export function writeRecord<R extends RecordBase>(record: R, dir: string = RESULTS_DIR): string {
  mkdirSync(dir, { recursive: true });
  const stamp = record.date.replace(/[:.]/g, '-');
  const name = `${stamp}_lesson${String(record.lesson).padStart(2, '0')}_${slug(record.kind)}_${slug(record.hardware.card)}.json`;
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  return file;
}

/** What a timed run measured: the numbers a bench record keeps (the harness's BenchRunResult carries them too). */
export interface RunResults {
  requests: number;
  finishedRequests: number;
  /** Prompt tokens of the requests that started (all of them in a complete run). */
  promptTokens: number;
  /** Tokens actually generated. */
  outputTokens: number;
  /** Wall time of the timed run (host clock, device synchronized at the end). */
  seconds: number;
  /** Output tokens over wall time: the headline number. */
  outputTokPerS: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
  peakMemoryBytes: number;
  /** The token counts and seconds behind the prefill and decode rates, so shards can be added up. */
  phases: { prefillTokens: number; prefillSeconds: number; decodeTokens: number; decodeSeconds: number };
}

/** A lesson's run of a workload (written by the harness; `pnpm bench`, `pnpm lesson N`). */
export interface BenchRecord extends RecordBase {
  kind: 'bench';
  /** The lesson's recipe name, e.g. "paged-kv-cache". */
  recipe: string;
  /** "course" or "throughput" (docs/benchmarking.md). */
  workload: string;
  model: { name: string; dtype: string; params: number; randomWeights: boolean };
  /** True when the time budget stopped the run early; results cover what finished. */
  partial: boolean;
  /** `phases` is absent from records written before 2026-11-27. */
  results: Omit<RunResults, 'phases'> & Partial<Pick<RunResults, 'phases'>>;
  /** The fastest this workload could run on this card (bytes and FLOPs counted), if computed. */
  roofline?: { outputTokPerS: number; /** The minimum seconds (records from 2026-11-27 on). */ seconds?: number; basis: string };
}

export type AnyRecord = BenchRecord | (RecordBase & { kind: 'environment'; results: Record<string, unknown> });
