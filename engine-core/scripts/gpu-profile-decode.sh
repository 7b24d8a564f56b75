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
#   KERNEL=decode_mma ONLY=course ...                                 one kernel's first LAUNCHES (3) launches of the step in
#                                                                     depth instead (speed of light, occupancy, warp stalls,
#                                                                     memory; caches left warm): why it runs at the rate it does
# ONLY=batch1, throughput or course (the course workload's 32 sequences at step STEP32, default 40).
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON=${LESSON:-11}
source "$(dirname "$0")/gpu-lib.sh"  # logs_dir, make_model, stamp, pack_logs
logs_dir profile-decode
LOGS=$LESSON_LOGS
make_model "$LOGS/model.log" || exit 1
profile() {  # NAME STEP LESSON_ARGS...: ncu over timed step STEP of one run, then the summary (top 15 kernels)
  local name=$1 step=$2; shift 2
  if [[ -n ${KERNEL:-} ]]; then
    AIOS_PROFILE_STEP=$step timeout 150 ncu --profile-from-start off --clock-control none --cache-control none --target-processes all \
      --kernel-name "regex:$KERNEL" --launch-count "${LAUNCHES:-3}" --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section WarpStateStats --section MemoryWorkloadAnalysis \
      tsx engine-core/src/cli/lesson.ts "$LESSON" "$@" ${PROFILE_ARGS:-} --no-samples --no-check --repeats 1 --no-record --no-progress \
      > "$LOGS/$name-$KERNEL.txt" 2> "$LOGS/$name-$KERNEL.err"
    stamp "$name $KERNEL (step $step) exit $?"
    grep -E "^  [a-z_]+.*\(|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Stall|Warp Cycles Per Issued|Waves Per SM|Grid Size|L2 Hit|L1/TEX Hit" "$LOGS/$name-$KERNEL.txt" | head -80
    return
  fi
  AIOS_PROFILE_STEP=$step timeout 150 ncu --profile-from-start off --clock-control none --target-processes all \
    --metrics "${METRICS:-gpu__time_duration.sum,dram__bytes_read.sum}" --csv \
    tsx engine-core/src/cli/lesson.ts "$LESSON" "$@" ${PROFILE_ARGS:-} --no-samples --no-check --repeats 1 --no-record --no-progress \
    > "$LOGS/$name.csv" 2> "$LOGS/$name.err"
  stamp "$name (step $step) exit $?"
  python3 engine-core/scripts/ncu_summary.py "$LOGS/$name.csv" 15
}
[[ -z ${ONLY:-} || ${ONLY:-} == batch1 ]] && profile "lesson$LESSON-batch1-step${STEP1:-40}" "${STEP1:-40}" --requests 1
[[ -z ${ONLY:-} || ${ONLY:-} == throughput ]] && profile "lesson$LESSON-throughput-step${STEP256:-60}" "${STEP256:-60}" --workload throughput
[[ ${ONLY:-} == course ]] && profile "lesson$LESSON-course-step${STEP32:-40}" "${STEP32:-40}"
pack_logs
stamp done
