// The two benchmark workloads (docs/benchmarking.md), generated exactly as
// Python generates them, so our numbers line up with engines that publish
// results on the same requests:
//
//   throughput  nano-vllm's bench.py: 256 requests, prompt lengths and max_tokens
//               uniform in [100, 1024], token ids in [0, 10000], temperature 0.6,
//               ignore_eos; Python's random with seed 0 -> 133,966 output tokens.
//   course      32 requests, prompt lengths uniform in [64, 512], 128 output tokens
//               each, greedy (so lessons can be compared token for token), ignore_eos,
//               seed 0, drawn with the same generator.
//   shared-prefix  256 requests over 8 different 1,024-token system prefixes (32 each,
//               dealt round-robin), each followed by a unique question of 32-128
//               tokens, 128 output tokens, greedy, ignore_eos, seed 0, the same
//               generator: what a prefix cache (lesson 13) is for.
//
// PythonRandom is a port of CPython's Mersenne Twister (Modules/_randommodule.c)
// and of the integer methods of Lib/random.py that these workloads use.
import { SamplingParams } from '../engine/sampling-params.ts';

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** CPython's `random.Random`, for the integer draws: seed(int), getrandbits(k <= 32), randbelow, randint. */
export class PythonRandom {
  private readonly mt = new Uint32Array(N);
  private mti = N + 1;

  constructor(seed = 0) {
    this.seed(seed);
  }

  /** random.seed(n) for an int n: init_by_array over |n| split into 32-bit words, little end first (0 -> [0]). */
  seed(n: number): void {
    if (!Number.isSafeInteger(n)) throw new RangeError(`PythonRandom.seed: expected a safe integer, got ${n}`);
    let a = Math.abs(n);
    const key: number[] = [];
    while (a > 0) {
      key.push(a % 0x1_0000_0000);
      a = Math.floor(a / 0x1_0000_0000);
    }
    if (key.length === 0) key.push(0);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]!;
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
    this.mti = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul(prev ^ (prev >>> 30), 1664525)) + key[j]! + j) >>> 0; // non-linear
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul(prev ^ (prev >>> 30), 1566083941)) - i) >>> 0; // non-linear
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000; // MSB is 1, assuring a non-zero initial array
  }

  /** genrand_uint32: the next 32-bit output. */
  nextUint32(): number {
    const mt = this.mt;
    if (this.mti >= N) {
      let kk = 0;
      for (; kk < N - M; kk++) {
        const y = (mt[kk]! & UPPER_MASK) | (mt[kk + 1]! & LOWER_MASK);
        mt[kk] = mt[kk + M]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      for (; kk < N - 1; kk++) {
        const y = (mt[kk]! & UPPER_MASK) | (mt[kk + 1]! & LOWER_MASK);
        mt[kk] = mt[kk + (M - N)]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      const y = (mt[N - 1]! & UPPER_MASK) | (mt[0]! & LOWER_MASK);
      mt[N - 1] = mt[M - 1]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      this.mti = 0;
    }
    let y = mt[this.mti++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** random.getrandbits(k) for 0 <= k <= 32: the top k bits of one output. */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 0 || k > 32) throw new RangeError(`PythonRandom.getrandbits: k must be an integer in [0, 32], got ${k}`);
    if (k === 0) return 0;
    return this.nextUint32() >>> (32 - k);
  }

  /** random._randbelow(n): rejection sampling over n.bit_length() bits, for 1 <= n < 2^32. */
  randbelow(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n >= 0x1_0000_0000) throw new RangeError(`PythonRandom.randbelow: n must be an integer in [1, 2^32), got ${n}`);
    const k = n.toString(2).length;
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** random.randint(a, b): a + _randbelow(b - a + 1), both ends included. */
  randint(a: number, b: number): number {
    if (!Number.isInteger(a) || !Number.isInteger(b) || b < a) throw new RangeError(`PythonRandom.randint: expected integers a <= b, got ${a}, ${b}`);
    return a + this.randbelow(b - a + 1);
  }
}

export type WorkloadName = 'course' | 'throughput' | 'long' | 'shared-prefix';
export const WORKLOAD_NAMES: readonly WorkloadName[] = ['course', 'throughput', 'long', 'shared-prefix'];

export interface WorkloadRequest {
  promptIds: number[];
  params: SamplingParams;
}

export interface WorkloadTotals {
  requests: number;
  promptTokens: number;
  /** The sum of max_tokens: with ignore_eos, exactly the tokens a complete run generates. */
  outputTokens: number;
}

export interface Workload {
  /** What records carry: "course", "throughput", or e.g. "course-8of32" for a subset. */
  name: string;
  /** The workload this one is (a subset of). */
  base: WorkloadName;
  description: string;
  requests: WorkloadRequest[];
  totals: WorkloadTotals;
  /** Present when this is the first `requests` of the `of` requests of the full workload (a quick run). */
  subset?: { requests: number; of: number };
  /** Present when this is shard `index` (1-based) of `count` of the full workload: its requests' positions in it. */
  shard?: { index: number; count: number; requestIndices: number[] };
}

function totalsOf(requests: readonly WorkloadRequest[]): WorkloadTotals {
  return {
    requests: requests.length,
    promptTokens: requests.reduce((n, r) => n + r.promptIds.length, 0),
    outputTokens: requests.reduce((n, r) => n + r.params.maxTokens, 0),
  };
}

/**
 * nano-vllm's bench.py, draw for draw:
 *
 *   seed(0)
 *   prompt_token_ids = [[randint(0, 10000) for _ in range(randint(100, 1024))] for _ in range(256)]
 *   sampling_params = [SamplingParams(temperature=0.6, ignore_eos=True, max_tokens=randint(100, 1024)) for _ in range(256)]
 *
 * (the inner range's length is drawn before its ids; every prompt before any max_tokens).
 */
export function throughputWorkload(): Workload {
  const rng = new PythonRandom(0);
  const prompts: number[][] = [];
  for (let i = 0; i < 256; i++) {
    const len = rng.randint(100, 1024);
    const ids: number[] = [];
    for (let t = 0; t < len; t++) ids.push(rng.randint(0, 10000));
    prompts.push(ids);
  }
  const requests = prompts.map((promptIds) => ({
    promptIds,
    params: new SamplingParams({ temperature: 0.6, ignoreEos: true, maxTokens: rng.randint(100, 1024) }),
  }));
  return {
    name: 'throughput',
    base: 'throughput',
    description: "nano-vllm's bench.py: 256 requests, prompt lengths and max_tokens uniform in [100, 1024], ids in [0, 10000], temperature 0.6, ignore_eos, Python random seed 0",
    requests,
    totals: totalsOf(requests),
  };
}

/**
 * The course's workload: seed(0); for each of 32 requests, length = randint(64, 512),
 * then that many ids randint(0, 10000); 128 output tokens each, greedy, ignore_eos.
 */
export function courseWorkload(): Workload {
  const rng = new PythonRandom(0);
  const requests: WorkloadRequest[] = [];
  for (let i = 0; i < 32; i++) {
    const len = rng.randint(64, 512);
    const promptIds: number[] = [];
    for (let t = 0; t < len; t++) promptIds.push(rng.randint(0, 10000));
    requests.push({ promptIds, params: new SamplingParams({ temperature: 0, ignoreEos: true, maxTokens: 128 }) });
  }
  return {
    name: 'course',
    base: 'course',
    description: 'the course workload: 32 requests, prompt lengths uniform in [64, 512], 128 output tokens each, greedy, ignore_eos, Python random seed 0',
    requests,
    totals: totalsOf(requests),
  };
}

/**
 * Long context: 8 requests of 2048-token prompts (ids randint(0, 10000), seed 0),
 * 128 output tokens each, greedy, ignore_eos. Where recomputing the whole sequence
 * every step (lesson 03) falls furthest behind a KV cache.
 */
export function longContextWorkload(): Workload {
  const rng = new PythonRandom(0);
  const requests: WorkloadRequest[] = [];
  for (let i = 0; i < 8; i++) {
    const promptIds: number[] = [];
    for (let t = 0; t < 2048; t++) promptIds.push(rng.randint(0, 10000));
    requests.push({ promptIds, params: new SamplingParams({ temperature: 0, ignoreEos: true, maxTokens: 128 }) });
  }
  return {
    name: 'long',
    base: 'long',
    description: 'long context: 8 requests of 2048-token prompts, 128 output tokens each, greedy, ignore_eos, Python random seed 0',
    requests,
    totals: totalsOf(requests),
  };
}

/** The shared-prefix workload's shape. */
export const SHARED_PREFIX = { prefixes: 8, prefixTokens: 1024, requests: 256, questionTokens: [32, 128], outputTokens: 128 } as const;

/**
 * Many requests behind few system prompts (a chat service's, or an agent's tools
 * description): Python's random, draw for draw,
 *
 *   seed(0)
 *   prefixes = [[randint(0, 10000) for _ in range(1024)] for _ in range(8)]
 *   questions = [[randint(0, 10000) for _ in range(randint(32, 128))] for _ in range(256)]
 *   prompts = [prefixes[i % 8] + questions[i] for i in range(256)]
 *
 * with 128 output tokens each, greedy, ignore_eos. The prefixes are dealt
 * round-robin, so every prefix appears among the first requests and each is
 * shared by exactly 32.
 */
export function sharedPrefixWorkload(): Workload {
  const { prefixes: P, prefixTokens, requests: R, questionTokens, outputTokens } = SHARED_PREFIX;
  const rng = new PythonRandom(0);
  const prefixes: number[][] = [];
  for (let p = 0; p < P; p++) prefixes.push(Array.from({ length: prefixTokens }, () => rng.randint(0, 10000)));
  const requests: WorkloadRequest[] = [];
  for (let i = 0; i < R; i++) {
    const len = rng.randint(questionTokens[0], questionTokens[1]);
    const question: number[] = [];
    for (let t = 0; t < len; t++) question.push(rng.randint(0, 10000));
    requests.push({ promptIds: [...prefixes[i % P]!, ...question], params: new SamplingParams({ temperature: 0, ignoreEos: true, maxTokens: outputTokens }) });
  }
  return {
    name: 'shared-prefix',
    base: 'shared-prefix',
    description:
      'shared prefixes: 256 requests over 8 different 1,024-token system prefixes (request i uses prefix i mod 8), each followed by a unique 32-128-token question, ' +
      '128 output tokens each, greedy, ignore_eos, Python random seed 0',
    requests,
    totals: totalsOf(requests),
  };
}

export function workload(name: WorkloadName): Workload {
  switch (name) {
    case 'shared-prefix':
      return sharedPrefixWorkload();
    case 'long':
      return longContextWorkload();
    case 'course':
      return courseWorkload();
    case 'throughput':
      return throughputWorkload();
    default:
      throw new Error(`unknown workload "${String(name)}" (expected ${WORKLOAD_NAMES.join(' or ')})`);
  }
}

export function isWorkloadName(s: string): s is WorkloadName {
  return (WORKLOAD_NAMES as readonly string[]).includes(s);
}

/**
 * The first `n` requests of a workload, for a quick run. It gets its own name
 * ("course-8of32") so its records are never mistaken for a run of the whole workload.
 */
export function firstRequests(w: Workload, n: number): Workload {
  if (w.shard) throw new RangeError(`firstRequests: ${w.name} is a shard; take a subset of the whole workload instead`);
  const of = w.subset?.of ?? w.requests.length;
  if (!Number.isInteger(n) || n < 1 || n > w.requests.length) throw new RangeError(`--requests must be an integer in [1, ${w.requests.length}] for the ${w.name} workload, got ${n}`);
  if (n === of) return w;
  const requests = w.requests.slice(0, n);
  return {
    ...w,
    name: `${w.base}-${n}of${of}`,
    description: `${w.description} (first ${n} of ${of} requests)`,
    requests,
    totals: totalsOf(requests),
    subset: { requests: n, of },
  };
}


/**
 * What one request costs an engine that serves one request at a time, in units
 * of a short decode step: each output token is a step, and a step over a long
 * context costs more (on the H100, lesson 05 decodes at 7.6 ms a step over
 * ~300 tokens and 15 ms over ~2,100: about +1 step per 2,048 tokens of context).
 */
function sequentialCost(r: WorkloadRequest): number {
  const steps = r.params.maxTokens;
  const meanContext = r.promptIds.length + steps / 2;
  return steps * (1 + meanContext / 2048);
}

/**
 * Shard `index` of `count` (1-based): the full workload's requests dealt out so
 * every shard has about the same work (largest first, each to the shard with
 * the least so far), in their original order within the shard. The shards of
 * a workload are disjoint and together hold every request exactly once, so an
 * engine that serves one request at a time can run them on several cards and
 * add the times up (mergeShardRecords in shards.ts).
 */
export function shardOf(w: Workload, index: number, count: number): Workload {
  if (w.subset || w.shard) throw new RangeError(`shardOf: ${w.name} is already a part of a workload; shard the whole one`);
  if (!Number.isInteger(count) || count < 2 || count > w.requests.length)
    throw new RangeError(`shard count must be an integer in [2, ${w.requests.length}] for the ${w.name} workload, got ${count}`);
  if (!Number.isInteger(index) || index < 1 || index > count) throw new RangeError(`shard index must be an integer in [1, ${count}], got ${index}`);
  const order = w.requests.map((r, i) => ({ i, cost: sequentialCost(r) })).sort((a, b) => b.cost - a.cost || a.i - b.i);
  const load = new Array<number>(count).fill(0);
  const owner = new Array<number>(w.requests.length);
  for (const { i, cost } of order) {
    let best = 0;
    for (let s = 1; s < count; s++) if (load[s]! < load[best]!) best = s;
    owner[i] = best;
    load[best]! += cost;
  }
  const requestIndices = owner.flatMap((s, i) => (s === index - 1 ? [i] : []));
  const requests = requestIndices.map((i) => w.requests[i]!);
  return {
    ...w,
    name: `${w.base}-shard${index}of${count}`,
    description: `${w.description} (shard ${index} of ${count}: ${requests.length} of ${w.requests.length} requests)`,
    requests,
    totals: totalsOf(requests),
    shard: { index, count, requestIndices },
  };
}

/** "3/8" -> { index: 3, count: 8 }, or a RangeError naming what is wrong. */
export function parseShard(s: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  if (!m) throw new RangeError(`--shard must look like K/N (shard K of N, 1 <= K <= N), got "${s}"`);
  return { index: Number(m[1]), count: Number(m[2]) };
}
