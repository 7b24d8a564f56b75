// The workloads against Python itself: the same seed must give the same
// lengths, ids and max_tokens as CPython's random (nano-vllm's bench.py).
import { execFileSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { PythonRandom, courseWorkload, firstRequests, parseShard, shardOf, throughputWorkload, workload } from '../src/bench/workloads.ts';

function findPython(): string | undefined {
  for (const exe of ['python3', 'python']) {
    try {
      const v = execFileSync(exe, ['-c', 'import sys; print(sys.version_info[0])'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
      if (v === '3') return exe;
    } catch {
      // not on PATH
    }
  }
  return undefined;
}

interface PySummary {
  promptTokens: number;
  outputTokens: number;
  firstLengths: number[];
  firstIds: number[];
  lastIds: number[];
  firstMaxTokens: number[];
}

const PY_THROUGHPUT = `
import json
from random import randint, seed
seed(0)
p = [[randint(0, 10000) for _ in range(randint(100, 1024))] for _ in range(256)]
m = [randint(100, 1024) for _ in range(256)]
print(json.dumps(dict(promptTokens=sum(map(len, p)), outputTokens=sum(m), firstLengths=[len(x) for x in p[:8]],
                      firstIds=p[0][:8], lastIds=p[-1][-8:], firstMaxTokens=m[:8])))
`;

const PY_COURSE = `
import json
from random import randint, seed
seed(0)
p = [[randint(0, 10000) for _ in range(randint(64, 512))] for _ in range(32)]
print(json.dumps(dict(promptTokens=sum(map(len, p)), outputTokens=128 * len(p), firstLengths=[len(x) for x in p[:8]],
                      firstIds=p[0][:8], lastIds=p[-1][-8:], firstMaxTokens=[128] * 8)))
`;

// Recorded from CPython 3.11.7 with the two scripts above, for machines without python3.
const RECORDED: Record<'throughput' | 'course', PySummary> = {
  throughput: {
    promptTokens: 142827,
    outputTokens: 133966,
    firstLengths: [964, 724, 484, 508, 316, 798, 439, 916],
    firstIds: [6311, 6890, 663, 4242, 8376, 7961, 6634, 4969],
    lastIds: [1517, 3584, 2869, 7768, 1157, 6642, 9046, 1958],
    firstMaxTokens: [845, 312, 607, 843, 500, 882, 178, 577],
  },
  course: {
    promptTokens: 9850,
    outputTokens: 4096,
    firstLengths: [496, 210, 380, 87, 270, 156, 137, 346],
    firstIds: [6311, 6890, 663, 4242, 8376, 7961, 6634, 4969],
    lastIds: [1613, 7339, 2694, 63, 3038, 5836, 901, 5000],
    firstMaxTokens: [128, 128, 128, 128, 128, 128, 128, 128],
  },
};

const python = findPython();

function reference(which: 'throughput' | 'course'): PySummary {
  if (!python) return RECORDED[which];
  return JSON.parse(execFileSync(python, ['-c', which === 'throughput' ? PY_THROUGHPUT : PY_COURSE]).toString()) as PySummary;
}

function summary(which: 'throughput' | 'course'): PySummary {
  const w = which === 'throughput' ? throughputWorkload() : courseWorkload();
  const r = w.requests;
  return {
    promptTokens: w.totals.promptTokens,
    outputTokens: w.totals.outputTokens,
    firstLengths: r.slice(0, 8).map((x) => x.promptIds.length),
    firstIds: r[0]!.promptIds.slice(0, 8),
    lastIds: r[r.length - 1]!.promptIds.slice(-8),
    firstMaxTokens: r.slice(0, 8).map((x) => x.params.maxTokens),
  };
}

describe(`PythonRandom (checked against ${python ? `${python} run now` : 'values recorded from CPython 3.11.7: no python3 on PATH'})`, () => {
  it('getrandbits and randint match CPython for seed 0 and for a seed wider than 32 bits', () => {
    const script = `
import json, random
out = []
for s in (0, 1, 123456789012):
    random.seed(s)
    out.append([random.getrandbits(32), random.getrandbits(7), random.randint(0, 10000), random.randint(5, 5), random.randint(0, 2**32 - 2)])
print(json.dumps(out))`;
    // Recorded from CPython 3.11.7 with the script above.
    const recorded = [
      [3626764237, 49, 6890, 5, 1112038970],
      [577090037, 72, 1033, 5, 506456969],
      [1619264890, 83, 339, 5, 603036555],
    ];
    const expected = python ? (JSON.parse(execFileSync(python, ['-c', script]).toString()) as number[][]) : recorded;
    const got = [0, 1, 123456789012].map((s) => {
      const r = new PythonRandom(s);
      return [r.getrandbits(32), r.getrandbits(7), r.randint(0, 10000), r.randint(5, 5), r.randint(0, 2 ** 32 - 2)];
    });
    expect(got).toEqual(expected);
    if (python) expect(got).toEqual(recorded); // the recorded fallback must stay true
  });

  it('rejects what it cannot do the way Python does', () => {
    const r = new PythonRandom(0);
    expect(() => r.getrandbits(33)).toThrow(/k must be an integer in \[0, 32\]/);
    expect(() => r.randint(3, 2)).toThrow(/a <= b/);
    expect(() => new PythonRandom(0.5)).toThrow(/safe integer/);
  });
});

describe('throughput workload (nano-vllm bench.py)', () => {
  it('has 256 requests and 133,966 output tokens', () => {
    const w = throughputWorkload();
    expect(w.requests).toHaveLength(256);
    expect(w.totals.outputTokens).toBe(133_966);
    expect(w.totals.requests).toBe(256);
  });

  it("matches Python's lengths, ids, max_tokens and prompt total", () => {
    const got = summary('throughput');
    expect(got).toEqual(reference('throughput'));
    if (python) expect(got).toEqual(RECORDED.throughput);
  });

  it('samples at temperature 0.6 with ignore_eos, ids in [0, 10000], lengths in [100, 1024]', () => {
    const w = throughputWorkload();
    for (const r of w.requests) {
      expect(r.params.temperature).toBe(0.6);
      expect(r.params.ignoreEos).toBe(true);
      expect(r.promptIds.length).toBeGreaterThanOrEqual(100);
      expect(r.promptIds.length).toBeLessThanOrEqual(1024);
      expect(r.params.maxTokens).toBeGreaterThanOrEqual(100);
      expect(r.params.maxTokens).toBeLessThanOrEqual(1024);
      expect(Math.min(...r.promptIds)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...r.promptIds)).toBeLessThanOrEqual(10000);
    }
  });
});

describe('course workload', () => {
  it("matches Python's lengths, ids and prompt total (seed 0, randint(64, 512))", () => {
    const got = summary('course');
    expect(got).toEqual(reference('course'));
    if (python) expect(got).toEqual(RECORDED.course);
  });

  it('is 32 greedy ignore_eos requests of 128 tokens, the same every time', () => {
    const a = courseWorkload();
    const b = workload('course');
    expect(a.requests).toHaveLength(32);
    expect(a.totals).toEqual({ requests: 32, promptTokens: 9850, outputTokens: 4096 });
    expect(b.requests.map((r) => r.promptIds)).toEqual(a.requests.map((r) => r.promptIds));
    for (const r of a.requests) {
      expect(r.params.greedy).toBe(true);
      expect(r.params.ignoreEos).toBe(true);
      expect(r.params.maxTokens).toBe(128);
      expect(r.promptIds.length).toBeGreaterThanOrEqual(64);
      expect(r.promptIds.length).toBeLessThanOrEqual(512);
    }
  });
});

describe('quick subsets', () => {
  it('firstRequests keeps the first N requests under a name of its own', () => {
    const w = courseWorkload();
    const s = firstRequests(w, 4);
    expect(s.name).toBe('course-4of32');
    expect(s.base).toBe('course');
    expect(s.subset).toEqual({ requests: 4, of: 32 });
    expect(s.requests.map((r) => r.promptIds.length)).toEqual([496, 210, 380, 87]);
    expect(s.totals).toEqual({ requests: 4, promptTokens: 496 + 210 + 380 + 87, outputTokens: 4 * 128 });
    expect(firstRequests(w, 32)).toBe(w);
    expect(firstRequests(s, 2).name).toBe('course-2of32');
    expect(() => firstRequests(w, 0)).toThrow(/--requests must be an integer in \[1, 32\]/);
    expect(() => firstRequests(w, 33)).toThrow(/\[1, 32\]/);
  });
});

describe('shards', () => {
  /** The cost shardOf balances, recomputed here from its definition: decode steps weighted by mean context / 2048. */
  const cost = (r: { promptIds: number[]; params: { maxTokens: number } }): number => r.params.maxTokens * (1 + (r.promptIds.length + r.params.maxTokens / 2) / 2048);

  it('deals every throughput request to exactly one of 8 shards, in order, with near-equal work', () => {
    const w = throughputWorkload();
    const shards = Array.from({ length: 8 }, (_, k) => shardOf(w, k + 1, 8));
    const all = shards.flatMap((s) => s.shard!.requestIndices).sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 256 }, (_, i) => i));
    for (const [k, s] of shards.entries()) {
      expect(s.name).toBe(`throughput-shard${k + 1}of8`);
      expect(s.base).toBe('throughput');
      expect(s.shard).toMatchObject({ index: k + 1, count: 8 });
      const idx = s.shard!.requestIndices;
      expect([...idx].sort((a, b) => a - b)).toEqual(idx); // original order kept
      expect(s.requests).toEqual(idx.map((i) => w.requests[i]));
      expect(s.totals.requests).toBe(idx.length);
    }
    expect(shards.reduce((n, s) => n + s.totals.outputTokens, 0)).toBe(133_966);
    expect(shards.reduce((n, s) => n + s.totals.promptTokens, 0)).toBe(w.totals.promptTokens);
    const work = shards.map((s) => s.requests.reduce((n, r) => n + cost(r), 0));
    // Largest-first dealing: the spread is at most one request's cost, a small fraction of a shard.
    expect(Math.max(...work) - Math.min(...work)).toBeLessThanOrEqual(Math.max(...w.requests.map(cost)));
    expect(Math.max(...work) / Math.min(...work)).toBeLessThan(1.02);
    // The same call deals the same way every time.
    expect(shardOf(w, 3, 8).shard).toEqual(shards[2]!.shard);
  });

  it('refuses bad indices and counts, and never mixes shards with subsets', () => {
    const w = courseWorkload();
    expect(() => shardOf(w, 0, 4)).toThrow(/shard index must be an integer in \[1, 4\], got 0/);
    expect(() => shardOf(w, 5, 4)).toThrow(/\[1, 4\]/);
    expect(() => shardOf(w, 1, 1)).toThrow(/shard count must be an integer in \[2, 32\]/);
    expect(() => shardOf(w, 1, 33)).toThrow(/\[2, 32\]/);
    expect(() => shardOf(w, 1.5, 4)).toThrow(/index/);
    expect(() => shardOf(firstRequests(w, 8), 1, 2)).toThrow(/already a part of a workload/);
    expect(() => shardOf(shardOf(w, 1, 2), 1, 2)).toThrow(/already a part/);
    expect(() => firstRequests(shardOf(w, 1, 2), 2)).toThrow(/is a shard/);
    expect(parseShard('3/8')).toEqual({ index: 3, count: 8 });
    expect(parseShard(' 1/2 ')).toEqual({ index: 1, count: 2 });
    expect(() => parseShard('3of8')).toThrow(/--shard must look like K\/N/);
    expect(() => parseShard('-1/8')).toThrow(/K\/N/);
  });
});

const PY_SHARED_PREFIX = `
import json
from random import randint, seed
seed(0)
prefixes = [[randint(0, 10000) for _ in range(1024)] for _ in range(8)]
questions = [[randint(0, 10000) for _ in range(randint(32, 128))] for _ in range(256)]
prompts = [prefixes[i % 8] + questions[i] for i in range(256)]
print(json.dumps(dict(promptTokens=sum(map(len, prompts)), firstLengths=[len(x) for x in prompts[:8]], firstIds=prompts[0][:8], lastIds=prompts[-1][-8:], prefix7=prefixes[7][:4])))
`;

describe('shared-prefix workload', () => {
  // Recorded from CPython 3.11.7 with the script above, for machines without python3.
  const recorded = {
    promptTokens: 282983,
    firstLengths: [1058, 1068, 1093, 1074, 1066, 1069, 1134, 1140],
    firstIds: [6311, 6890, 663, 4242, 8376, 7961, 6634, 4969],
    lastIds: [378, 6048, 7239, 4013, 2087, 1420, 9802, 8839],
    prefix7: [2807, 9054, 9525, 8832],
  };

  it("matches Python's draws: prompt total, lengths, first and last ids, the last prefix", () => {
    const w = workload('shared-prefix');
    const r = w.requests;
    const got = {
      promptTokens: w.totals.promptTokens,
      firstLengths: r.slice(0, 8).map((x) => x.promptIds.length),
      firstIds: r[0]!.promptIds.slice(0, 8),
      lastIds: r[r.length - 1]!.promptIds.slice(-8),
      prefix7: r[7]!.promptIds.slice(0, 4),
    };
    const expected = python ? JSON.parse(execFileSync(python, ['-c', PY_SHARED_PREFIX]).toString()) : recorded;
    expect(got).toEqual(expected);
    if (python) expect(got).toEqual(recorded);
  });

  it('256 requests, 8 prefixes of 1,024 tokens shared by 32 each, questions of 32-128 tokens all different, 128 greedy output tokens', () => {
    const w = workload('shared-prefix');
    expect(w.requests).toHaveLength(256);
    expect(w.totals.outputTokens).toBe(256 * 128);
    const byPrefix = new Map<string, number>();
    const questions = new Set<string>();
    w.requests.forEach((r, i) => {
      const q = r.promptIds.slice(1024);
      expect(q.length).toBeGreaterThanOrEqual(32);
      expect(q.length).toBeLessThanOrEqual(128);
      questions.add(q.join(','));
      const key = r.promptIds.slice(0, 1024).join(',');
      byPrefix.set(key, (byPrefix.get(key) ?? 0) + 1);
      expect(r.promptIds.slice(0, 1024)).toEqual(w.requests[i % 8]!.promptIds.slice(0, 1024));
      expect(r.promptIds.every((t) => Number.isInteger(t) && t >= 0 && t <= 10000)).toBe(true);
      expect(r.params).toMatchObject({ temperature: 0, ignoreEos: true, maxTokens: 128 });
    });
    expect([...byPrefix.values()]).toEqual(Array(8).fill(32));
    expect(questions.size).toBe(256);
    // The 8 prefixes differ from their first block on (a prefix cache must not confuse them).
    expect(new Set(w.requests.slice(0, 8).map((r) => r.promptIds.slice(0, 16).join(','))).size).toBe(8);
    // Deterministic: a second call gives the same requests.
    expect(workload('shared-prefix').requests.map((r) => r.promptIds)).toEqual(w.requests.map((r) => r.promptIds));
  });
});
