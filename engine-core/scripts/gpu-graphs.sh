#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: lesson 11 (CUDA graphs) in one
# short call: its bf16 GPU test against lesson 10 (graphs replayed for every
# decode step), then the course (3 runs) and throughput (1 run) workloads,
# recorded. DEADLINE_S bounds the whole script. Records and logs in $OUT/graphs.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON_LOGS=$OUT/graphs; mkdir -p "$LESSON_LOGS"
DEADLINE_S=${DEADLINE_S:-200}
source "$(dirname "$0")/gpu-lib.sh"
make_model "$LESSON_LOGS/model.log"
timeout 90 vitest run lessons/11-cuda-graphs/test/graphs.gpu.test.ts > "$LESSON_LOGS/graphs-gpu-test.log" 2>&1
stamp "lesson 11 GPU test exit $?: $(grep -E "Tests " "$LESSON_LOGS/graphs-gpu-test.log")"; grep -E "vs 10 on CUDA|graphs captured|replayed|×|Error" "$LESSON_LOGS/graphs-gpu-test.log" | head -8
run_lesson lesson11-course 45 11 --no-samples --record
run_lesson lesson11-throughput 40 11 --workload throughput --no-samples --no-check --repeats 1 --time-budget 60 --record
cp bench-results/*lesson11_bench*.json "$LESSON_LOGS/" 2>/dev/null
tar -czf "$OUT/graphs.tar.gz" -C "$OUT" graphs && rm -rf "$LESSON_LOGS"
stamp done
