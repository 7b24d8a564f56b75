#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: the shortest call that measures issue 12's lesson 13
# bars and issue 14's serving bar together (about 330 s): lesson 13's GPU tests (the cascade's and
# the prefix cache's; the cascade's kernel cases check against a CPU reference, which takes a minute or
# two), the shared-prefix and throughput workloads on lessons 12 and 13 (REPEATS runs each, default 3),
# the bars, then lesson 15's serving benchmark at rates inf, 16 and 64. Records and logs in $OUT/last.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-400}
REPEATS=${REPEATS:-3}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir last
make_model "$LESSON_LOGS/model.log" && stamp "model ready"
# LESSON13_TESTS=engine: only the engine-level GPU tests (prefix.gpu, and cascade.gpu's with/without run), not the kernel cases.
if [[ "${LESSON13_TESTS:-all}" == engine ]]; then filter=(-t "lesson 13 (with and without|on CUDA)"); else filter=(); fi
timeout 150 vitest run lessons/13-prefix-caching/test/cascade.gpu.test.ts lessons/13-prefix-caching/test/prefix.gpu.test.ts "${filter[@]}" > "$LESSON_LOGS/lesson13-gpu-tests.log" 2>&1
stamp "lesson 13 GPU tests exit $?: $(grep -E "Tests " "$LESSON_LOGS/lesson13-gpu-tests.log")"
grep -E "^cascade |micro-benchmark|lesson 13 vs|cascade vs plain|✓|×|AssertionError" "$LESSON_LOGS/lesson13-gpu-tests.log" | cut -c1-260 | head -24
run_lesson lesson12-shared-prefix 30 12 --workload shared-prefix --no-samples --no-check --repeats $REPEATS --record
run_lesson lesson13-shared-prefix 30 13 --workload shared-prefix --no-samples --no-check --repeats $REPEATS --record
run_lesson lesson12-throughput 45 12 --workload throughput --no-samples --no-check --repeats $REPEATS --record
run_lesson lesson13-throughput 45 13 --workload throughput --no-samples --no-check --repeats $REPEATS --record
tsx engine-core/scripts/prefix-bars.ts 12 | tee "$LESSON_LOGS/bars.txt"
if room 45; then
  timeout $((DEADLINE_S - (SECONDS - GPU_LIB_T0))) tsx engine-core/src/cli/bench.ts serve --rates inf,16,64 --record > "$LESSON_LOGS/bench-serve.log" 2>&1
  stamp "bench serve exit $?"
  grep -E "^offline|^rate|^recorded|Error" "$LESSON_LOGS/bench-serve.log" | cut -c1-420
fi
pack_logs
stamp done
