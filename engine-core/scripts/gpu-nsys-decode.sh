#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: the real timeline of lesson 11's (or LESSON's) decode
# steps, kernel by kernel inside the replayed graphs (Nsight Systems, --cuda-graph-trace=node): how
# long each kernel runs when it runs in the step (caches warm, no serialization, unlike ncu) and how
# much of the step the GPU sits idle between kernels. For issue 11's two small-batch bars: the course
# workload (32 sequences) and its first request alone (batch 1). nsys_summary.py reads the trace.
#   OUT=... bash engine-core/scripts/gpu-nsys-decode.sh     -> $OUT/nsys-decode.tar.gz
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON=${LESSON:-11}
DEADLINE_S=${DEADLINE_S:-300}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir nsys-decode
LOGS=$LESSON_LOGS
make_model "$LOGS/model.log" || exit 1
NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
stamp "nsys: ${NSYS:-none}"
trace() {  # NAME LESSON_ARGS...
  local name=$1; shift
  room 60 || { stamp "$name skipped: the deadline"; return; }
  local left=$((DEADLINE_S - (SECONDS - GPU_LIB_T0)))
  ((left > 120)) && left=120
  timeout "$left" "$NSYS" profile --cuda-graph-trace=node -t cuda --sample=none --cpuctxsw=none -o "$LOGS/$name" --force-overwrite true \
    tsx engine-core/src/cli/lesson.ts "$LESSON" "$@" --no-samples --no-check --repeats 1 --no-record --no-progress > "$LOGS/$name.log" 2>&1
  stamp "$name exit $?"
  timeout 90 "$NSYS" stats --report cuda_gpu_trace --format csv --output "$LOGS/$name" "$LOGS/$name.nsys-rep" > "$LOGS/$name.stats.log" 2>&1
  python3 engine-core/scripts/nsys_summary.py "$LOGS/${name}_cuda_gpu_trace.csv" 18 | tee "$LOGS/$name.summary.txt"
  rm -f "$LOGS/$name.sqlite"
}
# Without Nsight Systems: Nsight Compute over one replayed step twice, its kernels one by one with the
# caches left warm (--cache-control none: what each kernel costs with the step's data in L2) and the
# graph as one unit (--graph-profiling graph: the step's GPU time with the graph's own launches); the
# difference is what the graph spends between its kernels.
ncu_step() {  # NAME MODE LESSON_ARGS...
  local name=$1 mode=$2; shift 2
  room 60 || { stamp "$name skipped: the deadline"; return; }
  local left=$((DEADLINE_S - (SECONDS - GPU_LIB_T0)))
  ((left > 150)) && left=150
  AIOS_PROFILE_STEP=40 timeout "$left" ncu --profile-from-start off --clock-control none --cache-control none --graph-profiling "$mode" \
    --target-processes all --metrics gpu__time_duration.sum --csv \
    tsx engine-core/src/cli/lesson.ts "$LESSON" "$@" --no-samples --no-check --repeats 1 --no-record --no-progress \
    > "$LOGS/$name-$mode.csv" 2> "$LOGS/$name-$mode.err"
  stamp "$name ($mode) exit $?"
  python3 engine-core/scripts/ncu_summary.py "$LOGS/$name-$mode.csv" 16 | tee "$LOGS/$name-$mode.summary.txt"
}
if [[ -n ${NSYS:-} ]]; then
  trace "lesson$LESSON-batch1" --requests 1
  trace "lesson$LESSON-course"
else
  for w in batch1 course; do
    args=(); [[ $w == batch1 ]] && args=(--requests 1)
    ncu_step "lesson$LESSON-$w" node "${args[@]}"
    ncu_step "lesson$LESSON-$w" graph "${args[@]}"
  done
fi
pack_logs
stamp done
