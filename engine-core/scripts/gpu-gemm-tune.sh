#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: lesson 11 with cuBLASLt's candidates timed at capture
# (matmul.cu's tuning, the default) against the heuristic's first choice (AIOS_GEMM_TUNE=0), same call:
#   1. lesson 11's GPU tests (graph replay = the eager logits, with the timed algorithms)
#   2. lesson 10 throughput (recorded), then lesson 11 throughput, course and batch 1: tuned (recorded)
#      and AIOS_GEMM_TUNE=0 (not recorded), REPEATS runs each
#   3. lesson 09 under node --cpu-prof (throughput, one run, not recorded): where its host time goes
# DEADLINE_S bounds the call (default 400). Logs, records and the profile in $OUT/gemm-tune.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-400}
REPEATS=${REPEATS:-3}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir gemm-tune
make_model "$LESSON_LOGS/model.log" && stamp "model ready"
timeout 120 vitest run lessons/11-cuda-graphs/test/graphs.gpu.test.ts > "$LESSON_LOGS/graphs.gpu.test.log" 2>&1
stamp "graphs.gpu.test exit $?: $(grep -E "Tests " "$LESSON_LOGS/graphs.gpu.test.log" | sed 's/\x1b\[[0-9;]*m//g')"
run_lesson lesson10-throughput 30 10 --workload throughput --no-samples --no-check --repeats "$REPEATS" --record
run_lesson lesson11-throughput-tuned 30 11 --workload throughput --no-samples --no-check --repeats "$REPEATS" --record
AIOS_GEMM_TUNE=0 run_lesson lesson11-throughput-untuned 30 11 --workload throughput --no-samples --no-check --repeats "$REPEATS" --no-record
run_lesson lesson11-course-tuned 15 11 --no-samples --no-check --repeats "$REPEATS" --record
AIOS_GEMM_TUNE=0 run_lesson lesson11-course-untuned 15 11 --no-samples --no-check --repeats "$REPEATS" --no-record
run_lesson lesson11-batch1-tuned 15 11 --requests 1 --no-samples --no-check --repeats "$REPEATS" --record
AIOS_GEMM_TUNE=0 run_lesson lesson11-batch1-untuned 15 11 --requests 1 --no-samples --no-check --repeats "$REPEATS" --no-record
if room 40; then
  mkdir -p "$LESSON_LOGS/cpuprof"
  timeout 60 node --cpu-prof --cpu-prof-dir="$LESSON_LOGS/cpuprof" --import tsx engine-core/src/cli/lesson.ts 9 --workload throughput \
    --repeats 1 --no-record --no-samples --no-check --no-progress > "$LESSON_LOGS/lesson09-cpuprof.log" 2>&1
  stamp "lesson09 cpu-prof exit $?: $(grep -E "^throughput|steps: the host" "$LESSON_LOGS/lesson09-cpuprof.log" | cut -c1-160)"
fi
pack_logs
stamp done
