// The course map: every lesson's number, folder name and one-line idea.
// The runner, the bench and the README's table read it from here.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

import { REPO_ROOT } from '../bench/records.ts';

export interface LessonInfo {
  number: number;
  slug: string;
  title: string;
  idea: string;
}

export const LESSONS: readonly LessonInfo[] = [
  { number: 0, slug: 'introduction', title: 'Introduction', idea: 'the environment: backend, GPU, measured copy bandwidth and GEMM rate (your roofline)' },
  { number: 1, slug: 'llm-basics', title: 'LLM basics', idea: 'tokenizer, embeddings, one decoder layer step by step, parameter count' },
  { number: 2, slug: 'qwen3-from-scratch', title: 'Qwen3 from scratch', idea: 'the whole Qwen3 forward; greedy generation with no engine' },
  { number: 3, slug: 'baseline-engine', title: 'Baseline engine', idea: 'LLM API, SamplingParams, Sequence; recompute everything each step' },
  { number: 4, slug: 'kv-cache', title: 'KV cache', idea: 'per-layer K/V grown by concatenation' },
  { number: 5, slug: 'preallocated-cache', title: 'Preallocated cache', idea: 'fixed per-sequence K/V buffers written in place' },
  { number: 6, slug: 'paged-kv-cache', title: 'Paged KV cache', idea: 'block manager, one KV pool sized from free memory, block tables' },
  { number: 7, slug: 'batching', title: 'Batching', idea: 'static batches: many sequences per forward' },
  { number: 8, slug: 'continuous-batching', title: 'Continuous batching', idea: 'admit and retire sequences every step; preemption' },
  { number: 9, slug: 'flash-attention', title: 'FlashAttention', idea: 'tiled varlen prefill on tensor cores, paged split-KV decode' },
  { number: 10, slug: 'fused-layers', title: 'Fused layers', idea: 'fused QKV and gate-up GEMMs, add+RMSNorm, SiLU*mul, KV-store' },
  { number: 11, slug: 'cuda-graphs', title: 'CUDA graphs', idea: 'decode captured per batch-size bucket and replayed' },
  { number: 12, slug: 'sampling', title: 'Sampling', idea: 'temperature, top-k, top-p, min-p, seeds, repetition penalty on the GPU' },
  { number: 13, slug: 'prefix-caching', title: 'Prefix caching', idea: 'chained block hashes, ref counts, eviction' },
  { number: 14, slug: 'tensor-parallelism', title: 'Tensor parallelism', idea: 'NCCL, column/row-parallel linears, vocab-parallel head' },
  { number: 15, slug: 'serving', title: 'Serving', idea: 'OpenAI-compatible HTTP API with streaming' },
];

/** The first lesson with an engine, and so the first that runs a workload. */
export const FIRST_WORKLOAD_LESSON = 3;

export const LESSONS_DIR = path.join(REPO_ROOT, 'lessons');

export function lessonDir(info: LessonInfo): string {
  return path.join(LESSONS_DIR, `${String(info.number).padStart(2, '0')}-${info.slug}`);
}

/** The demo of a lesson, or undefined while the lesson is not written yet. */
export function lessonDemo(info: LessonInfo): string | undefined {
  const demo = path.join(lessonDir(info), 'src', 'demo.ts');
  return existsSync(demo) ? demo : undefined;
}

/** Lesson folders on disk that the map does not know (a typo in a folder name, say). */
export function unknownLessonFolders(): string[] {
  if (!existsSync(LESSONS_DIR)) return [];
  const known = new Set(LESSONS.map((l) => path.basename(lessonDir(l))));
  return readdirSync(LESSONS_DIR).filter((d) => /^\d\d-/.test(d) && !known.has(d));
}

/** "7", "07" -> lesson 7; anything else -> undefined. */
export function parseLessonNumber(arg: string): LessonInfo | undefined {
  if (!/^\d{1,2}$/.test(arg)) return undefined;
  return LESSONS.find((l) => l.number === Number(arg));
}
