// Lesson 13's bars (issue 12), read from the newest records of one card:
//   shared-prefix: the prefill ran >= 85% fewer tokens than the baseline lesson's, the run is
//                  >= 2x its output tok/s, and its time to first token p50 is lower;
//   throughput:    lesson 13 no slower than the baseline (its median tok/s at least the baseline's,
//                  or within the two records' run-to-run spread, which it says).
//
//   tsx engine-core/scripts/prefix-bars.ts BASE_LESSON [RESULTS_DIR]
//
// Prints one line per bar with the records it read; exits 1 when a record is missing or a bar fails.
import { findLatestRecord } from '../src/bench/harness.ts';
import type { BenchRecord, LoadedRecord } from '../src/bench/records.ts';

const base = Number(process.argv[2]);
const dir = process.argv[3];
if (!Number.isInteger(base) || base < 7 || base > 12) {
  console.error('usage: tsx engine-core/scripts/prefix-bars.ts BASE_LESSON [RESULTS_DIR]   (BASE_LESSON: 11 or 12, the lesson before the prefix cache)');
  process.exit(2);
}
const q = { kind: 'bench' as const, preferComplete: true, ...(dir ? { dir } : {}) };
const newest13 = findLatestRecord({ ...q, lesson: 13, workload: 'shared-prefix' });
if (!newest13) {
  console.error('no lesson 13 shared-prefix record');
  process.exit(1);
}
const card = newest13.record.hardware.card;
const get = (lesson: number, workload: string): LoadedRecord<BenchRecord> | undefined => findLatestRecord({ ...q, lesson, workload, card });

let failed = false;
const verdict = (ok: boolean) => {
  if (!ok) failed = true;
  return ok ? 'PASS' : 'FAIL';
};
const spread = (r: BenchRecord) => r.repeats?.spreadPct ?? 0;

const b = get(base, 'shared-prefix'), l = newest13;
if (!b) {
  console.error(`no lesson ${base} shared-prefix record on ${card}`);
  process.exit(1);
}
const bp = b.record.results.phases?.prefillTokens, lp = l.record.results.phases?.prefillTokens;
const bt = b.record.results.firstTokenMs, lt = l.record.results.firstTokenMs;
if (bp === undefined || lp === undefined || !bt || !lt) {
  console.error('a shared-prefix record lacks results.phases or results.firstTokenMs (written before this commit?)');
  process.exit(1);
}
console.log(`card ${card}; lesson ${base}: ${b.file}; lesson 13: ${l.file}`);
const fewer = 1 - lp / bp;
console.log(`shared-prefix prefill tokens: lesson ${base} ${bp}, lesson 13 ${lp}: ${(100 * fewer).toFixed(1)}% fewer (bar >= 85%): ${verdict(fewer >= 0.85)}`);
const speed = l.record.results.outputTokPerS / b.record.results.outputTokPerS;
console.log(
  `shared-prefix output tok/s: lesson ${base} ${b.record.results.outputTokPerS.toFixed(1)} (${b.record.results.seconds.toFixed(2)} s), ` +
    `lesson 13 ${l.record.results.outputTokPerS.toFixed(1)} (${l.record.results.seconds.toFixed(2)} s): ${speed.toFixed(2)}x (bar >= 2x): ${verdict(speed >= 2)}`,
);
console.log(`shared-prefix time to first token p50: lesson ${base} ${bt.p50.toFixed(1)} ms, lesson 13 ${lt.p50.toFixed(1)} ms (p99 ${bt.p99.toFixed(1)} vs ${lt.p99.toFixed(1)} ms) (bar: lower): ${verdict(lt.p50 < bt.p50)}`);

const tb = get(base, 'throughput'), tl = get(13, 'throughput');
if (!tb || !tl) {
  console.error(`no throughput record of lesson ${tb ? 13 : base} on ${card}`);
  process.exit(1);
}
const ratio = tl.record.results.outputTokPerS / tb.record.results.outputTokPerS;
const noise = Math.max(spread(tb.record), spread(tl.record)) / 100;
console.log(
  `throughput output tok/s: lesson ${base} ${tb.record.results.outputTokPerS.toFixed(1)} (spread ${spread(tb.record).toFixed(1)}%), lesson 13 ${tl.record.results.outputTokPerS.toFixed(1)} ` +
    `(spread ${spread(tl.record).toFixed(1)}%): ${ratio.toFixed(3)}x (bar: no slower${ratio < 1 ? `; ${ratio >= 1 - noise ? 'within the run-to-run spread' : 'beyond the run-to-run spread'}` : ''}): ${verdict(ratio >= 1 - noise)}`,
);
console.log(`  (${tb.file}, ${tl.file})`);
process.exit(failed ? 1 : 0);
