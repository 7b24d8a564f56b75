#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`, in one call: lesson 09's kernels
# (gpu-kernels.sh: checks, the SDPA peer, the kernel bench and its record), then
# lessons 09 and 10 on the course and throughput workloads (records), their bf16
# GPU test against lesson 08 on the 0.6B shape, and an Nsight Compute profile of
# one decode step of lesson 10 (launches and GPU time per kernel family).
# KERNELS_S bounds the kernel part; DEADLINE_S the whole script (default 480).
set -uo pipefail
OUT=${OUT:?set OUT}
FINAL=$OUT/final; mkdir -p "$FINAL"
export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
DEADLINE_S=${DEADLINE_S:-480}
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0)) s] $*"; }
room() { (( SECONDS - t0 + $1 <= DEADLINE_S )); }
tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$FINAL/model.log" 2>&1 || tail -5 "$FINAL/model.log"
stamp "model ready"
DEADLINE_S=${KERNELS_S:-250} SUITE_S=${SUITE_S:-70} bash engine-core/scripts/gpu-kernels.sh > "$FINAL/kernels-stdout.log" 2>&1
stamp "kernels exit $?"; cat "$OUT/summary.txt" 2>/dev/null | cut -c1-220 | tail -45
lesson() { # name, expected seconds, then the lesson's arguments
  local name=$1 secs=$2; shift 2
  if ! room "$secs"; then stamp "$name skipped: the deadline"; return; fi
  timeout $(( DEADLINE_S - (SECONDS - t0) )) tsx engine-core/src/cli/lesson.ts "$@" --no-progress > "$FINAL/$name.log" 2>&1
  stamp "$name exit $?"; grep -E "^(course|throughput)[^ ]*:|^repeats:|steps: the host|^roofline|^lesson .* on this card|^equivalence check: (the|DIFF)|^workspace" "$FINAL/$name.log" | cut -c1-300
}
lesson lesson9-course 40 9 --no-samples --record
lesson lesson10-course 40 10 --no-samples --record
lesson lesson9-throughput 45 9 --workload throughput --no-samples --no-check --repeats 1 --time-budget 90 --record
lesson lesson10-throughput 45 10 --workload throughput --no-samples --no-check --repeats 1 --time-budget 90 --record
if room 60; then
  timeout 90 vitest run lessons/10-fused-layers/test/fused.gpu.test.ts > "$FINAL/fused-gpu-test.log" 2>&1
  stamp "lessons 09-10 GPU test exit $?: $(grep -E "Tests " "$FINAL/fused-gpu-test.log")"; grep -E "vs 08 on CUDA|×|AssertionError" "$FINAL/fused-gpu-test.log" | head
fi
if room 50; then
  AIOS_PROFILE_STEP=40 timeout 80 ncu --profile-from-start off --clock-control none --target-processes all --metrics gpu__time_duration.sum --csv \
    tsx engine-core/src/cli/lesson.ts 10 --no-samples --no-check --repeats 1 --no-record --no-progress > "$FINAL/profile-lesson10-step40.csv" 2> "$FINAL/profile.err"
  stamp "profile exit $?"
  python3 - "$FINAL/profile-lesson10-step40.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1], errors='replace')) if len(r) > 10]
if not rows: print('profile: no rows'); sys.exit()
head = rows[0]; rows = [dict(zip(head, r)) for r in rows[1:]]
rows = [r for r in rows if r.get('Metric Name') == 'gpu__time_duration.sum']
scale = {'nsecond': 1e-3, 'ns': 1e-3, 'usecond': 1, 'us': 1, 'msecond': 1e3, 'ms': 1e3}
by = collections.defaultdict(lambda: [0, 0.0])
for r in rows:
    by[r['Kernel Name'].split('(')[0][:70]][0] += 1
    by[r['Kernel Name'].split('(')[0][:70]][1] += float(r['Metric Value'].replace(',', '')) * scale.get(r['Metric Unit'], 1)
print(f"profile: {len(rows)} kernels, {sum(v for _, v in by.values()):.1f} us of GPU time in the step")
for name, (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1])[:12]: print(f"  {us:9.1f} us  {n:4d} x  {name}")
PY
fi
cp bench-results/*lesson09_bench*.json bench-results/*lesson10_bench*.json "$FINAL/" 2>/dev/null
tar -czf "$OUT/final.tar.gz" -C "$OUT" final && rm -rf "$FINAL"
stamp done
