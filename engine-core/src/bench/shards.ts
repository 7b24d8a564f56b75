// A long benchmark in shards: the throughput workload on a lesson that serves
// one request at a time (03-06) takes longer than one sitting allows
// (~29 minutes for lesson 06 on an H100), so it can run as N shards, in
// parallel on N identical cards or one after another, and be added up.
//
//   pnpm bench --lesson 6 --workload throughput --shard 3/8    -> bench-results/shards/<...>.json
//   pnpm bench merge <the 8 records that run wrote>             -> bench-results/<...>.json
//
// Adding up is exact only for such an engine: a request's time does not depend
// on which requests run before or beside it, because none runs beside it. The
// merged record's seconds are the sum of the shards' wall times, i.e. what one
// card would take serving all of them in a row; mergeShardRecords refuses
// anything else (a batching lesson, a partial shard, a missing or repeated
// request, different cards, commits, models or settings).
import { type BenchRecord, recordEngineShape } from './records.ts';
import { isWorkloadName, shardOf, workload as makeWorkload } from './workloads.ts';

export interface ShardInfo {
  index: number;
  count: number;
  requestIndices: number[];
  cudaVisibleDevices?: string | null;
}

export interface ShardInput {
  /** Where the record came from (kept in the merged record). */
  file: string;
  record: BenchRecord;
}

const SHARD_SUFFIX = /-shard(\d+)of(\d+)$/;

function shardInfo(file: string, r: BenchRecord): ShardInfo {
  const s = r.settings.shard as ShardInfo | undefined;
  if (!s || typeof s.index !== 'number' || typeof s.count !== 'number' || !Array.isArray(s.requestIndices))
    throw new Error(`${file}: not a shard record (settings.shard is missing); run it with pnpm bench --shard K/N`);
  return s;
}

/** JSON with object keys sorted, so equal settings give equal text. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(',')}}`;
  return JSON.stringify(v) ?? 'undefined';
}

/** Settings that differ between the shards of one run by design: which requests, their KV figures, the warm-up's time. */
const PER_SHARD_SETTINGS = new Set(['shard', 'kvCache', 'workload', 'workloadDescription', 'requests', 'warmup']);

/** The first setting (not a per-shard one) on which two records differ, or undefined. */
function settingDifference(a: BenchRecord, b: BenchRecord): string | undefined {
  const keys = new Set([...Object.keys(a.settings), ...Object.keys(b.settings)]);
  for (const k of [...keys].sort()) {
    if (PER_SHARD_SETTINGS.has(k)) continue;
    const x = stableJson(a.settings[k]), y = stableJson(b.settings[k]);
    if (x !== y) return `settings.${k} (${x.length > 80 ? `${x.slice(0, 80)}...` : x})`;
  }
  return undefined;
}

/**
 * The record of the whole workload from the records of all its shards, or an
 * error that names the shard and what is wrong with it.
 */
export function mergeShardRecords(inputs: readonly ShardInput[]): BenchRecord {
  if (inputs.length === 0) throw new Error('mergeShardRecords: no shard records given');
  const first = inputs[0]!;
  const f = first.record;
  const m = SHARD_SUFFIX.exec(f.workload);
  if (!m) throw new Error(`${first.file}: workload "${f.workload}" is not a shard (expected a name like throughput-shard1of8)`);
  const base = f.workload.slice(0, m.index);
  if (!isWorkloadName(base)) throw new Error(`${first.file}: unknown workload "${base}"`);
  if (recordEngineShape(f) !== 'sequential')
    throw new Error(
      `${first.file}: lesson ${f.lesson} batches requests, so a request's time depends on what runs beside it and shard times do not add up; run the whole workload in one go`,
    );
  const count = shardInfo(first.file, f).count;
  if (inputs.length !== count)
    throw new Error(
      `mergeShardRecords: the workload was cut into ${count} shards; ${inputs.length} record(s) given` +
        (inputs.length > count ? ' (records of more than one run? name the records of one run)' : ''),
    );

  const full = makeWorkload(base);
  const seen = new Map<number, string>();
  for (const { file, record: r } of inputs) {
    const s = shardInfo(file, r);
    if (r.kind !== 'bench') throw new Error(`${file}: a ${r.kind} record, not a bench record`);
    if (s.count !== count) throw new Error(`${file}: shard ${s.index} of ${s.count}, but ${first.file} is one of ${count}`);
    if (seen.has(s.index)) throw new Error(`${file}: shard ${s.index} of ${count} is given twice (also ${seen.get(s.index)})`);
    seen.set(s.index, file);
    const same: [string, unknown, unknown][] = [
      ['lesson', r.lesson, f.lesson],
      ['recipe', r.recipe, f.recipe],
      ['commit', r.commit, f.commit],
      ['card', r.hardware.card, f.hardware.card],
      ['model', JSON.stringify(r.model), JSON.stringify(f.model)],
    ];
    for (const [what, a, b] of same) if (a !== b) throw new Error(`${file}: its ${what} (${String(a)}) differs from ${first.file}'s (${String(b)}); shards must be the same run cut in parts`);
    const diff = settingDifference(r, f);
    if (diff) throw new Error(`${file}: its ${diff} differs from ${first.file}'s; shards must be the same run cut in parts`);
    if (r.partial) throw new Error(`${file}: shard ${s.index} stopped early (partial: ${r.results.finishedRequests}/${r.results.requests} requests); rerun that shard`);
    const expected = shardOf(full, s.index, count);
    if (r.workload !== expected.name || JSON.stringify(s.requestIndices) !== JSON.stringify(expected.shard!.requestIndices))
      throw new Error(`${file}: its requests are not shard ${s.index} of ${count} of the ${base} workload as shardOf deals them`);
    if (r.results.outputTokens !== expected.totals.outputTokens || r.results.finishedRequests !== expected.totals.requests)
      throw new Error(`${file}: ${r.results.outputTokens} output tokens from ${r.results.finishedRequests} requests; the shard has ${expected.totals.outputTokens} from ${expected.totals.requests}`);
    if (!r.results.phases) throw new Error(`${file}: no results.phases (prefill/decode tokens and seconds), so its rates cannot be added up; rerun it with this commit`);
  }

  const sorted = [...inputs].sort((a, b) => shardInfo(a.file, a.record).index - shardInfo(b.file, b.record).index);
  const sum = (get: (r: BenchRecord) => number): number => sorted.reduce((n, x) => n + get(x.record), 0);
  const seconds = sum((r) => r.results.seconds);
  const outputTokens = sum((r) => r.results.outputTokens);
  const phases = {
    prefillTokens: sum((r) => r.results.phases!.prefillTokens),
    prefillSeconds: sum((r) => r.results.phases!.prefillSeconds),
    decodeTokens: sum((r) => r.results.phases!.decodeTokens),
    decodeSeconds: sum((r) => r.results.phases!.decodeSeconds),
  };
  const rate = (t: number, s: number): number => (s > 0 ? t / s : 0);
  const latest = sorted.reduce((a, b) => (Date.parse(b.record.date) > Date.parse(a.record.date) ? b : a));

  // One request at a time, the roofline is a sum over requests too: the shards' minimum seconds add up.
  let roofline: BenchRecord['roofline'];
  if (sorted.every((x) => x.record.roofline?.seconds !== undefined)) {
    const roofSeconds = sum((r) => r.roofline!.seconds!);
    roofline = {
      outputTokPerS: outputTokens / roofSeconds,
      seconds: roofSeconds,
      basis:
        `one request at a time, the sum of the ${count} shards' bounds: ${sorted.map((x) => x.record.roofline!.seconds!.toFixed(3)).join(' + ')} = ${roofSeconds.toFixed(3)} s ` +
        `for ${outputTokens.toLocaleString('en-US')} output tokens; shard 1's: ${f.roofline!.basis}`,
    };
  }

  const { shard: _shard, kvCache: _kv, warmup: _w, ...settings } = f.settings;
  const kv = sorted.map((x) => x.record.settings.kvCache as Record<string, number> | undefined);
  return {
    schema: 1,
    kind: 'bench',
    lesson: f.lesson,
    date: latest.record.date,
    commit: f.commit,
    hardware: f.hardware,
    settings: {
      ...settings,
      workload: base,
      workloadDescription: full.description,
      requests: full.requests.length,
      timing:
        `the sum of the wall times of ${count} shard runs (pnpm bench --shard K/${count}), each one generate() over its requests with its own warm-up, ` +
        `on cards of the same model; the lesson serves one request at a time, so this is one card's time for the whole workload`,
      ...(kv.every((k) => k) ? { kvCache: { peakReservedBytes: Math.max(...kv.map((k) => k!.peakReservedBytes!)), peakUsedBytes: Math.max(...kv.map((k) => k!.peakUsedBytes!)) } } : {}),
      shards: sorted.map(({ file, record: r }) => ({
        file,
        index: shardInfo(file, r).index,
        cudaVisibleDevices: shardInfo(file, r).cudaVisibleDevices ?? null,
        date: r.date,
        requests: r.results.requests,
        outputTokens: r.results.outputTokens,
        seconds: r.results.seconds,
        outputTokPerS: r.results.outputTokPerS,
        peakMemoryBytes: r.results.peakMemoryBytes,
        warmup: r.settings.warmup ?? false,
        ...(r.settings.kvCache ? { kvCache: r.settings.kvCache } : {}),
      })),
    },
    recipe: f.recipe,
    workload: base,
    model: f.model,
    partial: false,
    results: {
      requests: sum((r) => r.results.requests),
      finishedRequests: sum((r) => r.results.finishedRequests),
      promptTokens: sum((r) => r.results.promptTokens),
      outputTokens,
      seconds,
      outputTokPerS: rate(outputTokens, seconds),
      prefillTokPerS: rate(phases.prefillTokens, phases.prefillSeconds),
      decodeTokPerS: rate(phases.decodeTokens, phases.decodeSeconds),
      peakMemoryBytes: Math.max(...sorted.map((x) => x.record.results.peakMemoryBytes)),
      phases,
    },
    ...(roofline ? { roofline } : {}),
  };
}
