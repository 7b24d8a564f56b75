#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: the decode path of lessons 09-11 checked and measured
# in one call (issues 10 and 11): the small-M GEMM (gemm_small.cu), the 16-byte lesson 10 kernels, decode
# v3's longest-first order.
#   1. GPU tests: ops (every op vs the CPU, the small-M matmul among them), lesson 10's fused kernels and
#      forward, lesson 11's graph replay (exactly the eager logits), lesson 09's kernels vs the CPU reference
#   2. bench-gemm: the small-M kernel against cuBLASLt on the projection shapes (1..64 tokens)
#   3. lessons 08-11 on the throughput workload and 09-11 on the course workload (REPEATS runs each,
#      recorded), lesson 11 at batch 1 (course-1of32, recorded); then lesson 11's course and batch-1 runs
#      again with AIOS_SMALL_GEMM=0 (cuBLASLt at every size; not recorded): the kernel's share, same call.
# GEMM_AB=0 leaves out step 2 and the AIOS_SMALL_GEMM=0 runs; EXTRA_TESTS (test files, space-separated) run after
# step 1's; FROM_LESSON=10 leaves out lessons 08 and 09's runs. DEADLINE_S bounds the call (default 540). Logs and the records it wrote in $OUT/decode.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-540}
REPEATS=${REPEATS:-3}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir decode
make_model "$LESSON_LOGS/model.log" && stamp "model ready"
for t in engine-core/test/ops.gpu.test.ts lessons/10-fused-layers/test/fused.gpu.test.ts lessons/11-cuda-graphs/test/graphs.gpu.test.ts \
         engine-core/test/flash-attention.gpu.test.ts ${EXTRA_TESTS:-}; do
  name=$(basename "$t" .ts)
  if ! room 60; then stamp "$name skipped: the deadline"; continue; fi
  timeout 150 vitest run "$t" > "$LESSON_LOGS/$name.log" 2>&1
  stamp "$name exit $?: $(grep -E "Tests " "$LESSON_LOGS/$name.log" | sed 's/\x1b\[[0-9;]*m//g')"
  grep -E "×|FAIL|AssertionError" "$LESSON_LOGS/$name.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-240 | head -8
done
if [[ ${GEMM_AB:-1} != 0 ]] && room 120; then
  timeout 100 tsx engine-core/src/cli/bench-gemm.ts --json "$LESSON_LOGS/gemm.json" > "$LESSON_LOGS/bench-gemm.log" 2>&1
  stamp "bench-gemm exit $?"
  grep -vE "^\s*$" "$LESSON_LOGS/bench-gemm.log" | tail -40 | cut -c1-200
fi
if ((${FROM_LESSON:-8} <= 8)); then run_lesson lesson08-throughput 50 8 --workload throughput --no-samples --no-check --repeats "$REPEATS" --record; fi
if ((${FROM_LESSON:-8} <= 9)); then run_lesson lesson09-throughput 40 9 --workload throughput --no-samples --no-check --repeats "$REPEATS" --record; fi
run_lesson lesson10-throughput 35 10 --workload throughput --no-samples --no-check --repeats "$REPEATS" --record
run_lesson lesson11-throughput 30 11 --workload throughput --no-samples --no-check --repeats "$REPEATS" --record
if ((${FROM_LESSON:-8} <= 9)); then run_lesson lesson09-course 15 9 --no-samples --no-check --repeats "$REPEATS" --record; fi
run_lesson lesson10-course 15 10 --no-samples --no-check --repeats "$REPEATS" --record
run_lesson lesson11-course 15 11 --no-samples --no-check --repeats "$REPEATS" --record
run_lesson lesson11-batch1 15 11 --requests 1 --no-samples --no-check --repeats "$REPEATS" --record
if [[ ${GEMM_AB:-1} != 0 ]]; then
AIOS_SMALL_GEMM=0 run_lesson lesson11-course-cublas 15 11 --no-samples --no-check --repeats "$REPEATS" --no-record
AIOS_SMALL_GEMM=0 run_lesson lesson11-batch1-cublas 15 11 --requests 1 --no-samples --no-check --repeats "$REPEATS" --no-record
fi
pack_logs
stamp done
