#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: where a decode step of lesson 11 (or LESSON) spends
# its device time, kernel by kernel (Nsight Compute, each node of the replayed graph), for issue 11's
# two open bars: one sequence (the course workload's first request; bar 0.45 ms a step) and 256
# sequences (the throughput workload at step 60: its prompts are in, none has reached its 100-token
# minimum yet; bar 22,000 tok/s). Kernel durations only
# (gpu__time_duration) and the bytes each read from device memory (dram__bytes_read, METRICS to change),
# the clocks left alone; ncu serializes kernels, so the sum is the device's
# work, not the step's wall time (the gaps between kernels are what the lesson's own timing adds).
#   OUT=... bash engine-core/scripts/gpu-profile-decode.sh            -> $OUT/profile-decode.tar.gz
#   LESSON=12 STEP1=40 STEP256=80 ...                                 another lesson, other steps
#   LESSON=14 PROFILE_ARGS="--model DIR" ONLY=throughput ...          another model (a big shape), one of the two
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON=${LESSON:-11}
source "$(dirname "$0")/gpu-lib.sh"  # logs_dir, make_model, stamp, pack_logs
logs_dir profile-decode
LOGS=$LESSON_LOGS
make_model "$LOGS/model.log" || exit 1
profile() {  # NAME STEP LESSON_ARGS...: ncu over timed step STEP of one run, then the summary (top 15 kernels)
  local name=$1 step=$2; shift 2
  AIOS_PROFILE_STEP=$step timeout 150 ncu --profile-from-start off --clock-control none --target-processes all \
    --metrics "${METRICS:-gpu__time_duration.sum,dram__bytes_read.sum}" --csv \
    tsx engine-core/src/cli/lesson.ts "$LESSON" "$@" ${PROFILE_ARGS:-} --no-samples --no-check --repeats 1 --no-record --no-progress \
    > "$LOGS/$name.csv" 2> "$LOGS/$name.err"
  stamp "$name (step $step) exit $?"
  python3 engine-core/scripts/ncu_summary.py "$LOGS/$name.csv" 15
}
[[ ${ONLY:-} == throughput ]] || profile "lesson$LESSON-batch1-step${STEP1:-40}" "${STEP1:-40}" --requests 1
[[ ${ONLY:-} == batch1 ]] || profile "lesson$LESSON-throughput-step${STEP256:-60}" "${STEP256:-60}" --workload throughput
pack_logs
stamp done
