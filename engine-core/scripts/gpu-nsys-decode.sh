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
  timeout 120 "$NSYS" profile --cuda-graph-trace=node -t cuda --sample=none --cpuctxsw=none -o "$LOGS/$name" --force-overwrite true \
    tsx engine-core/src/cli/lesson.ts "$LESSON" "$@" --no-samples --no-check --repeats 1 --no-record --no-progress > "$LOGS/$name.log" 2>&1
  stamp "$name exit $?"
  timeout 90 "$NSYS" stats --report cuda_gpu_trace --format csv --output "$LOGS/$name" "$LOGS/$name.nsys-rep" > "$LOGS/$name.stats.log" 2>&1
  python3 engine-core/scripts/nsys_summary.py "$LOGS/${name}_cuda_gpu_trace.csv" 18 | tee "$LOGS/$name.summary.txt"
  rm -f "$LOGS/$name.sqlite"
}
if [[ -n ${NSYS:-} ]]; then
  trace "lesson$LESSON-batch1" --requests 1
  trace "lesson$LESSON-course"
fi
pack_logs
stamp done
