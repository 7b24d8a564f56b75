#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: the batched runtime (lessons
# 07-08) in one call: its CUDA tests (kernels and lessons 06-08 in bf16), lessons
# 06, 07 and 08 on the course workload, 07 and 08 on the throughput workload
# (with the default limits, and with 64 sequences a step, where a static batch's
# idle slots show), and an Nsight Compute profile of one decode step of lesson 08.
# Records and logs land in $OUT as records.tar.gz and logs.tar.gz.
#   SKIP_TESTS=1 SKIP_PROFILE=1 LESSON6=0 engine-core/scripts/gpu-batched.sh
set -uo pipefail
OUT=${OUT:?set OUT}
LOGS=$OUT/logs; mkdir -p "$LOGS"
export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$LOGS/model.log" 2>&1 || tail -5 "$LOGS/model.log"
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0)) s] $*"; }
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
  vitest run engine-core/test/ops.gpu.test.ts engine-core/test/sample-rows.test.ts lessons/06-paged-kv-cache/test/equivalence.gpu.test.ts lessons/08-continuous-batching/test > "$LOGS/gpu-tests.log" 2>&1
  stamp "gpu tests exit $?: $(grep -E "Tests " "$LOGS/gpu-tests.log")"; grep -E "×|FAIL|vs 06 on CUDA" "$LOGS/gpu-tests.log" | head -20
fi
lesson() { # name, then the lesson's arguments
  local name=$1; shift
  tsx engine-core/src/cli/lesson.ts "$@" --record > "$LOGS/$name.log" 2>&1
  stamp "$name exit $?"; grep -E "^(course|throughput)[^ ]*:|steps: the host|^roofline|^lesson .* on this card|^KV pool|^preemptions" "$LOGS/$name.log"
}
[[ "${LESSON6:-1}" == 1 ]] && lesson lesson6-course 6 --no-samples
lesson lesson7-course 7
lesson lesson8-course 8
lesson lesson8-throughput 8 --workload throughput --no-samples --time-budget 240
lesson lesson7-throughput 7 --workload throughput --no-samples --time-budget 240
if [[ "${LIMITED:-1}" == 1 ]]; then
  lesson lesson8-throughput-64 8 --workload throughput --no-samples --time-budget 150 --max-num-seqs 64
  lesson lesson7-throughput-64 7 --workload throughput --no-samples --time-budget 150 --max-num-seqs 64
fi
if [[ "${SKIP_PROFILE:-0}" != 1 ]]; then
  # Step 40 of lesson 08's course run: a decode step with all 32 sequences running.
  AIOS_PROFILE_STEP=40 ncu --profile-from-start off --clock-control none --target-processes all --metrics gpu__time_duration.sum --csv \
    tsx engine-core/src/cli/lesson.ts 8 --no-samples --no-record > "$LOGS/profile-lesson8-step40.csv" 2> "$LOGS/profile.err"
  stamp "profile exit $?: $(grep -c '"gpu__time_duration.sum"' "$LOGS/profile-lesson8-step40.csv") kernels"
  python3 - "$LOGS/profile-lesson8-step40.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head = rows[0]; rows = [dict(zip(head, r)) for r in rows[1:] if r[head.index('Metric Name')] == 'gpu__time_duration.sum']
by = collections.defaultdict(lambda: [0, 0.0])
for r in rows:
    name = r['Kernel Name'].split('(')[0].split('<')[0][:60]; unit = r['Metric Unit']; v = float(r['Metric Value'].replace(',', ''))
    v = v / 1000 if unit == 'nsecond' else v * (1000 if unit == 'msecond' else 1)
    by[name][0] += 1; by[name][1] += v
total = sum(v for _, v in by.values())
print(f"profile: {len(rows)} kernels, {total:.1f} us of GPU time in the step")
for name, (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1])[:12]: print(f"  {us:9.1f} us  {n:4d} x  {name}")
PY
fi
mkdir -p "$OUT/records" && cp bench-results/*.json "$OUT/records/" 2>/dev/null
tar -czf "$OUT/records.tar.gz" -C "$OUT" records && rm -rf "$OUT/records"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
