#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`, in one call: lesson 09's kernels
# (gpu-kernels.sh: checks, the SDPA peer, the kernel bench and its record), then
# lessons 09 and 10 on the course and throughput workloads (records), their bf16
# GPU test against lesson 08 on the 0.6B shape, and an Nsight Compute profile of
# one decode step of lesson 10 (launches and GPU time per kernel family).
# KERNELS_S bounds the kernel part; DEADLINE_S the whole script (default 480).
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON_LOGS=$OUT/final; mkdir -p "$LESSON_LOGS"
DEADLINE_S=${DEADLINE_S:-480}
source "$(dirname "$0")/gpu-lib.sh"
make_model "$LESSON_LOGS/model.log"
stamp "model ready"
DEADLINE_S=${KERNELS_S:-250} SUITE_S=${SUITE_S:-70} bash engine-core/scripts/gpu-kernels.sh > "$LESSON_LOGS/kernels-stdout.log" 2>&1
stamp "kernels exit $?"; cut -c1-220 "$OUT/summary.txt" 2>/dev/null | tail -45
run_lesson lesson9-course 40 9 --no-samples --record
run_lesson lesson10-course 40 10 --no-samples --record
run_lesson lesson9-throughput 45 9 --workload throughput --no-samples --no-check --repeats 1 --time-budget 90 --record
run_lesson lesson10-throughput 45 10 --workload throughput --no-samples --no-check --repeats 1 --time-budget 90 --record
if room 60; then
  timeout 90 vitest run lessons/10-fused-layers/test/fused.gpu.test.ts > "$LESSON_LOGS/fused-gpu-test.log" 2>&1
  stamp "lessons 09-10 GPU test exit $?: $(grep -E "Tests " "$LESSON_LOGS/fused-gpu-test.log")"; grep -E "vs 08 on CUDA|×|AssertionError" "$LESSON_LOGS/fused-gpu-test.log" | head
fi
if room 50; then
  AIOS_PROFILE_STEP=40 timeout 80 ncu --profile-from-start off --clock-control none --target-processes all --metrics gpu__time_duration.sum --csv \
    tsx engine-core/src/cli/lesson.ts 10 --no-samples --no-check --repeats 1 --no-record --no-progress > "$LESSON_LOGS/profile-lesson10-step40.csv" 2> "$LESSON_LOGS/profile.err"
  stamp "profile exit $?"
  python3 engine-core/scripts/ncu_summary.py "$LESSON_LOGS/profile-lesson10-step40.csv" 12
fi
cp bench-results/*lesson09_bench*.json bench-results/*lesson10_bench*.json "$LESSON_LOGS/" 2>/dev/null
tar -czf "$OUT/final.tar.gz" -C "$OUT" final && rm -rf "$LESSON_LOGS"
stamp done
