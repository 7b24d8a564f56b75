#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: lesson 13 (prefix caching) in one call.
#   1. its bf16 GPU tests: lesson 13's greedy tokens equal the baseline's with shared prefixes; the
#      cascade decode's kernels against the CPU reference and decode v3, its micro-benchmark on the
#      workload's shape (time and K/V bytes per layer call), lesson 13's tokens and logits with and
#      without the cascade;
#   2. the shared-prefix workload (256 requests over 8 shared 1,024-token prefixes), 3 runs each,
#      on the baseline (lesson 12, or lesson 11 while lesson 12 has no recipe) and on lesson 13;
#   3. the throughput workload (no shared prefixes), 3 runs each, on both;
#   4. the bars (engine-core/scripts/prefix-bars.ts): >= 85% fewer prefill tokens, >= 2x tok/s and a
#      lower p50 time to first token on shared-prefix; throughput no slower.
# PREFIX_TESTS=0 skips step 1 (a caller that ran lesson 13's tests already).
# CASCADE_AB=1 also runs lesson 13 on shared-prefix with AIOS_CASCADE=0 (its plain decode; no record):
# the cascade's own gain in the same call.
# Records and logs in $OUT/prefix.tar.gz (the records also in bench-results/). DEADLINE_S bounds it.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-540}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir prefix
BASE=12; [[ -f lessons/12-sampling/src/recipe.ts ]] || BASE=11
stamp "baseline: lesson $BASE"
make_model "$LESSON_LOGS/model.log"
stamp "model ready"
if [[ "${PREFIX_TESTS:-1}" == 1 ]]; then  # PREFIX_TESTS=0: the caller ran lesson 13's tests already
  timeout 150 vitest run lessons/13-prefix-caching/test/prefix.gpu.test.ts > "$LESSON_LOGS/prefix-gpu-test.log" 2>&1
  stamp "lesson 13 GPU test exit $?: $(grep -E "Tests " "$LESSON_LOGS/prefix-gpu-test.log")"; grep -E "lesson 13 (first|second) call|lesson 13 vs 12|×|AssertionError" "$LESSON_LOGS/prefix-gpu-test.log" | head -8
  timeout 150 vitest run lessons/13-prefix-caching/test/cascade.gpu.test.ts > "$LESSON_LOGS/cascade-gpu-test.log" 2>&1
  stamp "lesson 13 cascade GPU test exit $?: $(grep -E "Tests " "$LESSON_LOGS/cascade-gpu-test.log")"; grep -E "^cascade |cascade micro-benchmark|cascade vs plain|×|AssertionError" "$LESSON_LOGS/cascade-gpu-test.log" | cut -c1-300 | head -14
fi
run_lesson lesson$BASE-shared-prefix 60 $BASE --workload shared-prefix --no-samples --no-check --repeats 3 --record
run_lesson lesson13-shared-prefix 45 13 --workload shared-prefix --no-samples --repeats 3 --record
[[ "${CASCADE_AB:-0}" == 1 ]] && AIOS_CASCADE=0 run_lesson lesson13-plain-decode-shared-prefix 45 13 --workload shared-prefix --no-samples --no-check --repeats 3
# BASE_THROUGHPUT=0: the baseline's throughput record comes from earlier in the same call (gpu-sampling.sh).
[[ "${BASE_THROUGHPUT:-1}" == 1 ]] && run_lesson lesson$BASE-throughput 70 $BASE --workload throughput --no-samples --no-check --repeats 3 --time-budget 60 --record
run_lesson lesson13-throughput 70 13 --workload throughput --no-samples --no-check --repeats 3 --time-budget 60 --record
tsx engine-core/scripts/prefix-bars.ts "$BASE" | tee "$LESSON_LOGS/bars.txt"
stamp "bars exit ${PIPESTATUS[0]}"
pack_logs '*_bench_*.json'
stamp done
