// The serving benchmark's parts on the CPU: percentiles, seeded Poisson arrivals,
// a short run through the server (every token counted, latencies ordered), its
// record valid and drawn; and the serve CLI's conventions (help, a bad flag).
import { describe, expect, it } from 'vitest';

import { quantile } from '@aios/engine-core/bench/harness.ts';
import { type ServeRecord, recordProblem } from '@aios/engine-core/bench/records.ts';
import { firstRequests, throughputWorkload } from '@aios/engine-core/bench/workloads.ts';
import { runCli } from '@aios/engine-core/cli/args.ts';
import { SamplingParams } from '@aios/engine-core/engine/sampling-params.ts';
import { serveEntries } from '@aios/engine-core/chart/data.ts';
import { serveTables } from '@aios/engine-core/chart/page.ts';
import { recipe as lesson11Recipe } from '@aios/lesson-11-cuda-graphs';

import { parseRates, poissonArrivals, runServeBench } from '../src/bench-serve.ts';
import { SERVE_SPEC, serveMain, serverFromFlags } from '../src/cli.ts';
import { servedRecipe } from '../src/recipe.ts';
import { createServer } from '../src/server.ts';

describe('pnpm bench serve (CPU)', () => {
  it('percentiles interpolate between ranks; arrivals are seeded exponential gaps', () => {
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4, 5], 0.99)).toBeCloseTo(4.96);
    const a = poissonArrivals(4000, 10, 1);
    expect(poissonArrivals(4000, 10, 1)).toEqual(a);
    expect(poissonArrivals(4000, 10, 2)).not.toEqual(a);
    const meanGap = a[a.length - 1]! / (a.length - 1);
    expect(meanGap).toBeGreaterThan(90); // 100 ms expected
    expect(meanGap).toBeLessThan(110);
    expect(poissonArrivals(3, Infinity, 0)).toEqual([0, 0, 0]);
    expect(parseRates('inf,2.5')).toEqual([Infinity, 2.5]);
    expect(() => parseRates('fast')).toThrow(/--rates/);
  });

  it('a short run: every token arrives, latencies are ordered, the record is valid and drawn', async () => {
    const base = firstRequests(throughputWorkload(), 3);
    const w = { ...base, requests: base.requests.map((r, i) => ({ promptIds: r.promptIds.slice(0, 40), params: new SamplingParams({ temperature: 0.6, ignoreEos: true, maxTokens: 3 + i }) })) };
    const server = createServer({ recipe: servedRecipe, device: 'cpu', engine: { kvCacheBytes: 16 * 2 ** 20 }, log: () => {} });
    let result;
    try {
      result = await runServeBench(server, { workload: w, rates: [Infinity, 50], log: () => {} });
      expect(server.loop.pending).toBe(0);
    } finally {
      await server.close();
    }
    expect(result.offline.outputTokens).toBe(3 + 4 + 5);
    for (const r of result.rates) {
      expect(r.outputTokens).toBe(12);
      expect(r.ttftMs.p50).toBeGreaterThan(0);
      expect(r.ttftMs.p99).toBeGreaterThanOrEqual(r.ttftMs.p50);
      expect(r.itlMs.p99).toBeGreaterThanOrEqual(r.itlMs.p50);
      expect(r.e2eMs.p50).toBeGreaterThanOrEqual(r.ttftMs.p50);
      expect(r.loop.steps).toBeGreaterThanOrEqual(5); // the longest request's 5 tokens, one per step at least
    }
    expect(result.rates.map((r) => r.rate)).toEqual([null, 50]);
    const rec: ServeRecord = {
      schema: 1, kind: 'serve', lesson: 15, date: new Date().toISOString(), commit: 'test', settings: {},
      hardware: { backend: 'cpu', card: 'test cpu', gpuCount: 0, cpuCores: 2 },
      recipe: servedRecipe.name, servedLesson: servedRecipe.lesson, workload: w.name,
      model: { name: 'tiny', dtype: 'f32', params: 1, randomWeights: true }, results: result,
    };
    expect(recordProblem(JSON.parse(JSON.stringify(rec)))).toBeUndefined();
    expect(recordProblem({ ...rec, results: { ...rec.results, rates: [] } })).toMatch(/rates/);
    const html = serveTables(serveEntries([{ file: 'x.json', record: rec }]));
    expect(html).toContain('unbounded');
    expect(html).toContain('50.0 req/s');
  });

  it('pnpm serve: --help exits 0; a bad flag names itself, exit 2, no stack', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
    expect(await runCli(SERVE_SPEC, serveMain, { argv: ['--help'], io, setExitCode: false })).toBe(0);
    expect(out.join('\n')).toMatch(/--api-key KEY/);
    expect(await runCli(SERVE_SPEC, serveMain, { argv: ['--port', 'eighty'], io, setExitCode: false })).toBe(2);
    expect(err.join('\n')).toMatch(/--port must be an integer from 0 to 65535, got "eighty"/);
    expect(await runCli(SERVE_SPEC, serveMain, { argv: ['--tp', '0'], io, setExitCode: false })).toBe(2);
    expect(err.join('\n')).toMatch(/--tp must be .*got "0"/);
    // An engine without tensor parallelism refuses --tp 2 before it loads anything.
    expect(() => serverFromFlags({ tp: '2' }, lesson11Recipe)).toThrow(/--tp 2: the served engine \(lesson 11, cuda-graphs\) runs on one GPU; tensor parallelism comes with lesson 14/);
    expect(await runCli(SERVE_SPEC, serveMain, { argv: ['--portt', '1'], io, setExitCode: false })).toBe(2);
    expect(err.join('\n')).toMatch(/did you mean --port/);
    expect(err.join('\n')).not.toMatch(/    at /);
  });
});
