#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: where a decode step of lesson 11 (or LESSON) spends
# its device time, kernel by kernel (Nsight Compute, each node of the replayed graph), for issue 11's
# open bars: one sequence (the course workload's first request; bar 0.45 ms a step), 256 sequences
# (the throughput workload at step 60: its prompts are in, none has reached its 100-token minimum
# yet; bar 22,000 tok/s) and, with ONLY=course, the course workload's 32 sequences. Kernel durations
# only (gpu__time_duration) and the bytes each read from device memory (dram__bytes_read, METRICS to
# change), the clocks left alone; ncu serializes kernels, so the sum is the device's work, not the
# step's wall time (the gaps between kernels are what the lesson's own timing adds).
#   OUT=... bash engine-core/scripts/gpu-profile-decode.sh            -> $OUT/profile-decode.tar.gz
#   LESSON=12 STEP1=40 STEP256=80 ...                                 another lesson, other steps
#   LESSON=14 PROFILE_ARGS="--model DIR" ONLY=throughput ...          another model (a big shape), one of the two
#   ONLY=batch1|throughput|course                                     one workload (course: step STEP32, default 40)
#   NCU_CAP_S=300 ...                                                 the most seconds one ncu run may take (default 150).
#                                                                     Each metric beyond the two defaults can add a replay
#                                                                     pass per kernel: at 530d8d6 six metrics over (docs/measurements/profile-course-timeout-h200-530d8d6.log)
#                                                                     the course's step 40 (313 kernels) ran past 150 s and
#                                                                     left no rows
#   KERNEL=decode_mma SECTIONS="SpeedOfLight Occupancy" COUNT=3 ...   Nsight Compute's sections (its text report, no summary)
#                                                                     for COUNT launches (default 3) of the kernels whose
#                                                                     name matches KERNEL (a regex) in the step: why one
#                                                                     kernel runs as it does, within the cap. A section
#                                                                     takes several replay passes, and ncu saves and restores
#                                                                     the device memory the process holds around each: with
#                                                                     the default 90% of the card (a 123 GiB KV pool) one
#                                                                     course step's four launches ran past 150 s (611380e), so
#                                                                     this mode runs the engine in 5% of the card's memory
#                                                                     (SECTIONS_MEM to change). With SOURCE=1 the report is
#                                                                     also saved and its SASS page printed (per instruction:
#                                                                     the warp-stall samples, by reason) for the matching
#                                                                     kernels; METRICS adds metrics to the sections
#   CACHE=warm GRAPH=1 ...                                            the caches left warm (--cache-control none: what
#                                                                     each kernel costs with the step's data in L2), and
#                                                                     the step again as one unit (--graph-profiling graph:
#                                                                     the graph's own time, its launches included)
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON=${LESSON:-11}
DEADLINE_S=${DEADLINE_S:-540}
source "$(dirname "$0")/gpu-lib.sh"  # logs_dir, make_model, stamp, pack_logs, room
logs_dir profile-decode
LOGS=$LESSON_LOGS
make_model "$LOGS/model.log" || exit 1
cache=(); [[ ${CACHE:-} == warm ]] && cache=(--cache-control none)
ncu_run() {  # NAME STEP MODE LESSON_ARGS...: ncu over timed step STEP of one run (MODE node or graph), then the summary
  local name=$1 step=$2 mode=$3; shift 3
  room 60 || { stamp "$name ($mode) skipped: the deadline"; return; }
  local left=$((DEADLINE_S - (SECONDS - GPU_LIB_T0)))
  ((left > ${NCU_CAP_S:-150})) && left=${NCU_CAP_S:-150}
  local lesson_args=(tsx engine-core/src/cli/lesson.ts "$LESSON" "$@" ${PROFILE_ARGS:-} --no-samples --no-check --repeats 1 --no-record --no-progress)
  if [[ -n ${SECTIONS:-} ]]; then
    local sections=() s
    for s in $SECTIONS; do sections+=(--section "$s"); done
    lesson_args+=(--gpu-memory-utilization "${SECTIONS_MEM:-0.05}")
    [[ -n ${METRICS:-} ]] && sections+=(--metrics "$METRICS")
    local report=()
    [[ ${SOURCE:-} == 1 ]] && report=(--section SourceCounters --import-source no -o "$LOGS/$name-$mode" -f)
    AIOS_PROFILE_STEP=$step timeout "$left" ncu --profile-from-start off --clock-control none "${cache[@]}" --graph-profiling "$mode" \
      --target-processes all --kernel-name "regex:${KERNEL:?SECTIONS needs KERNEL}" --launch-count "${COUNT:-3}" "${sections[@]}" \
      "${report[@]}" "${lesson_args[@]}" > "$LOGS/$name-$mode-sections.txt" 2> "$LOGS/$name-$mode.err"
    stamp "$name ($mode, step $step, sections of $KERNEL) exit $?"
    if [[ ${SOURCE:-} == 1 && -f $LOGS/$name-$mode.ncu-rep ]]; then
      ncu -i "$LOGS/$name-$mode.ncu-rep" --page details --print-details all > "$LOGS/$name-$mode-sections.txt" 2>&1
      ncu -i "$LOGS/$name-$mode.ncu-rep" --page source --print-source sass --csv > "$LOGS/$name-$mode-sass.csv" 2> "$LOGS/$name-$mode-sass.err"
      stamp "$name: SASS page exit $? ($(wc -l < "$LOGS/$name-$mode-sass.csv") lines)"
      rm -f "$LOGS/$name-$mode.ncu-rep"
    fi
    grep -vE "^==PROF==|^\s*$" "$LOGS/$name-$mode-sections.txt" | tail -120
    return
  fi
  AIOS_PROFILE_STEP=$step timeout "$left" ncu --profile-from-start off --clock-control none "${cache[@]}" --graph-profiling "$mode" \
    --target-processes all --metrics "${METRICS:-gpu__time_duration.sum,dram__bytes_read.sum}" --csv \
    "${lesson_args[@]}" > "$LOGS/$name-$mode.csv" 2> "$LOGS/$name-$mode.err"
  stamp "$name ($mode, step $step) exit $?"
  python3 engine-core/scripts/ncu_summary.py "$LOGS/$name-$mode.csv" 16 | tee "$LOGS/$name-$mode.summary.txt"
}
profile() {  # NAME STEP LESSON_ARGS...
  local name=$1 step=$2; shift 2
  ncu_run "$name" "$step" node "$@"
  [[ ${GRAPH:-} == 1 ]] && ncu_run "$name" "$step" graph "$@"
}
[[ -z ${ONLY:-} || ${ONLY:-} == batch1 ]] && profile "lesson$LESSON-batch1-step${STEP1:-40}" "${STEP1:-40}" --requests 1
[[ -z ${ONLY:-} || ${ONLY:-} == throughput ]] && profile "lesson$LESSON-throughput-step${STEP256:-60}" "${STEP256:-60}" --workload throughput
[[ ${ONLY:-} == course ]] && profile "lesson$LESSON-course-step${STEP32:-40}" "${STEP32:-40}"
pack_logs
stamp done
