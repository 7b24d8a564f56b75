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
LESSON_LOGS=$OUT/logs; mkdir -p "$LESSON_LOGS"
DEADLINE_S=${DEADLINE_S:-540}
source "$(dirname "$0")/gpu-lib.sh"
make_model "$LESSON_LOGS/model.log"
stamp "model ready"
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
  timeout 180 vitest run engine-core/test/ops.gpu.test.ts engine-core/test/sample-rows.test.ts lessons/08-continuous-batching/test > "$LESSON_LOGS/gpu-tests.log" 2>&1
  stamp "gpu tests exit $?: $(grep -E "Tests " "$LESSON_LOGS/gpu-tests.log")"; grep -E "×|FAIL|vs 06 on CUDA|AssertionError" "$LESSON_LOGS/gpu-tests.log" | head -20
fi
run_lesson lesson7-course 60 7 --no-samples --record
run_lesson lesson8-course 60 8 --no-samples --record
run_lesson lesson8-throughput 120 8 --workload throughput --no-samples --no-check --repeats 1 --time-budget 150 --record
run_lesson lesson7-throughput 120 7 --workload throughput --no-samples --no-check --repeats 1 --time-budget 150 --record
run_lesson lesson6-course 70 6 --no-samples --no-check --repeats 1 --record
if [[ "${SKIP_PROFILE:-0}" != 1 ]] && room 90; then
  # Step 40 of lesson 08's course run: a decode step with all 32 sequences running.
  AIOS_PROFILE_STEP=40 timeout 120 ncu --profile-from-start off --clock-control none --target-processes all --metrics gpu__time_duration.sum --csv \
    tsx engine-core/src/cli/lesson.ts 8 --no-samples --no-check --repeats 1 --no-record --no-progress > "$LESSON_LOGS/profile-lesson8-step40.csv" 2> "$LESSON_LOGS/profile.err"
  stamp "profile exit $?"
  python3 engine-core/scripts/ncu_summary.py "$LESSON_LOGS/profile-lesson8-step40.csv"
fi
run_lesson lesson8-throughput-64 120 8 --workload throughput --no-samples --no-check --repeats 1 --time-budget 120 --max-num-seqs 64 --record
run_lesson lesson7-throughput-64 120 7 --workload throughput --no-samples --no-check --repeats 1 --time-budget 120 --max-num-seqs 64 --record
mkdir -p "$OUT/records" && cp bench-results/*.json "$OUT/records/" 2>/dev/null
tar -czf "$OUT/records.tar.gz" -C "$OUT" records && rm -rf "$OUT/records"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LESSON_LOGS"
stamp done
