#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: lesson 12 (sampling on the GPU) in one call:
#   1. its GPU tests (lessons/12-sampling/test/sampling.gpu.test.ts): every sampling kernel against
#      the CPU reference at 256 x 151,936 (logits restored, thresholds, tokens, log-probs),
#      chi-square of the GPU's draws per filter and its power, a seeded row alone and among 255
#      others, greedy through the engine equal to lesson 11's tokens;
#   2. the sampler micro-benchmark at 256 x 151,936 (device time and GB/s per path, lesson 11's
#      sampleRows beside it), into sampler-bench.json;
#   3. the throughput workload (256 requests, temperature 0.6) for lessons 11 and 12, REPEATS runs
#      each (default 3) in one record each (median and spread): lesson 12 must be no slower than 11.
# DEADLINE_S bounds the whole script (default 560). Records and logs in $OUT/sampling.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-560}
REPEATS=${REPEATS:-3}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir sampling
make_model "$LESSON_LOGS/model.log" && stamp "model ready"
timeout 150 vitest run lessons/12-sampling/test/sampling.gpu.test.ts > "$LESSON_LOGS/sampling-gpu-test.log" 2>&1
stamp "lesson 12 GPU test exit $?: $(grep -E "Tests " "$LESSON_LOGS/sampling-gpu-test.log")"
grep -E "differ between CUDA|×|AssertionError|Error:" "$LESSON_LOGS/sampling-gpu-test.log" | cut -c1-240 | head -20
for n in ${LESSONS:-11 12}; do
  run_lesson "lesson$n-throughput" 45 "$n" --workload throughput --no-samples --no-check --repeats "$REPEATS" --record
done
if room 60; then
  timeout 60 tsx lessons/12-sampling/src/bench-sampler.ts --out "$LESSON_LOGS/sampler-bench.json" > "$LESSON_LOGS/sampler-bench.log" 2>&1
  stamp "sampler bench exit $?"; cut -c1-200 "$LESSON_LOGS/sampler-bench.log" | head -16
fi
pack_logs '*_lesson11_bench_*.json' '*_lesson12_bench_*.json'
stamp done
