#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: the batched runtime (lessons
# 07-08) in one call: its CUDA tests (kernels and lessons 06-08 in bf16), lessons
# 07 and 08 on the course and throughput workloads, lesson 06 on the course
# workload as the baseline of the same card and call, an Nsight Compute profile
# of one decode step of lesson 08, and 07 against 08 at 64 sequences a step
# (where a static batch's idle slots show). Steps run in that order while the
# deadline allows (DEADLINE_S from the start, default 540), each under a timeout.
# Records and logs land in $OUT as records.tar.gz and logs.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
LOGS=$OUT/logs; mkdir -p "$LOGS"
export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
DEADLINE_S=${DEADLINE_S:-540}
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0)) s] $*"; }
# room N: true when N more seconds fit before the deadline.
room() { (( SECONDS - t0 + $1 <= DEADLINE_S )); }
tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$LOGS/model.log" 2>&1 || tail -5 "$LOGS/model.log"
stamp "model ready"
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
  timeout 180 vitest run engine-core/test/ops.gpu.test.ts engine-core/test/sample-rows.test.ts lessons/08-continuous-batching/test > "$LOGS/gpu-tests.log" 2>&1
  stamp "gpu tests exit $?: $(grep -E "Tests " "$LOGS/gpu-tests.log")"; grep -E "×|FAIL|vs 06 on CUDA|AssertionError" "$LOGS/gpu-tests.log" | head -20
fi
lesson() { # name, expected seconds, then the lesson's arguments
  local name=$1 secs=$2; shift 2
  if ! room "$secs"; then stamp "$name skipped: the deadline"; return; fi
  timeout $(( DEADLINE_S - (SECONDS - t0) )) tsx engine-core/src/cli/lesson.ts "$@" --no-progress > "$LOGS/$name.log" 2>&1
  stamp "$name exit $?"; grep -E "^(course|throughput)[^ ]*:|^repeats:|steps: the host|^roofline|^lesson .* on this card|^KV pool|^preemptions|^equivalence check: (the|DIFF)" "$LOGS/$name.log" | cut -c1-400
}
lesson lesson7-course 60 7 --no-samples --record
lesson lesson8-course 60 8 --no-samples --record
lesson lesson8-throughput 120 8 --workload throughput --no-samples --no-check --repeats 1 --time-budget 150 --record
lesson lesson7-throughput 120 7 --workload throughput --no-samples --no-check --repeats 1 --time-budget 150 --record
lesson lesson6-course 70 6 --no-samples --no-check --repeats 1 --record
if [[ "${SKIP_PROFILE:-0}" != 1 ]] && room 90; then
  # Step 40 of lesson 08's course run: a decode step with all 32 sequences running.
  AIOS_PROFILE_STEP=40 timeout 120 ncu --profile-from-start off --clock-control none --target-processes all --metrics gpu__time_duration.sum --csv \
    tsx engine-core/src/cli/lesson.ts 8 --no-samples --no-check --repeats 1 --no-record --no-progress > "$LOGS/profile-lesson8-step40.csv" 2> "$LOGS/profile.err"
  stamp "profile exit $?"
  python3 - "$LOGS/profile-lesson8-step40.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1], errors='replace')) if len(r) > 10]
if not rows: print('profile: no rows'); sys.exit()
head = rows[0]; rows = [dict(zip(head, r)) for r in rows[1:]]
rows = [r for r in rows if r.get('Metric Name') == 'gpu__time_duration.sum']
by = collections.defaultdict(lambda: [0, 0.0])
for r in rows:
    name = r['Kernel Name'].split('(')[0][:70]; unit = r['Metric Unit']; v = float(r['Metric Value'].replace(',', ''))
    us = v / 1000 if unit == 'nsecond' else v * 1000 if unit == 'msecond' else v
    by[name][0] += 1; by[name][1] += us
total = sum(v for _, v in by.values())
print(f"profile: {len(rows)} kernels, {total:.1f} us of GPU time in the step")
for name, (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1])[:14]: print(f"  {us:9.1f} us  {n:4d} x  {name}")
PY
fi
lesson lesson8-throughput-64 120 8 --workload throughput --no-samples --no-check --repeats 1 --time-budget 120 --max-num-seqs 64 --record
lesson lesson7-throughput-64 120 7 --workload throughput --no-samples --no-check --repeats 1 --time-budget 120 --max-num-seqs 64 --record
mkdir -p "$OUT/records" && cp bench-results/*.json "$OUT/records/" 2>/dev/null
tar -czf "$OUT/records.tar.gz" -C "$OUT" records && rm -rf "$OUT/records"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
stamp done
