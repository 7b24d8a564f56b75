#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`, in one call: lesson 15's serving
# benchmark (pnpm bench serve) on the throughput workload (256 requests) through the
# HTTP server: the same requests offline first, then at an unbounded rate and at
# 4, 16 and 64 requests/s (Poisson, seed 0): throughput (and its share of offline:
# the bar is 90% at the unbounded rate), TTFT / TPOT / ITL p50 and p99, and the
# engine loop's time per step inside the step and around it (the server's own
# overhead). Then lesson 15's GPU test (the server on CUDA). Records and logs under
# $OUT/serve (tarred). DEADLINE_S bounds the whole script (default 540).
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON_LOGS=$OUT/serve; mkdir -p "$LESSON_LOGS"
DEADLINE_S=${DEADLINE_S:-540}
RATES=${RATES:-inf,4,16,64}
source "$(dirname "$0")/gpu-lib.sh"
make_model "$LESSON_LOGS/model.log"
stamp "model ready"
if room 150; then
  timeout $((DEADLINE_S - (SECONDS - GPU_LIB_T0) - 60)) tsx engine-core/src/cli/bench.ts serve --rates "$RATES" --record > "$LESSON_LOGS/bench-serve.log" 2>&1
  stamp "bench serve exit $?"
  grep -E "^pnpm bench serve|^offline|^rate|^recorded|FAILED|Error" "$LESSON_LOGS/bench-serve.log" | cut -c1-400
fi
if room 50; then
  timeout 90 vitest run lessons/15-serving/test/serve.gpu.test.ts > "$LESSON_LOGS/serve-gpu-test.log" 2>&1
  stamp "lesson 15 GPU test exit $?: $(grep -E "Tests " "$LESSON_LOGS/serve-gpu-test.log")"; grep -E "×|AssertionError|Error" "$LESSON_LOGS/serve-gpu-test.log" | head
fi
cp bench-results/*lesson15_serve*.json "$LESSON_LOGS/" 2>/dev/null
tar -czf "$OUT/serve.tar.gz" -C "$OUT" serve && rm -rf "$LESSON_LOGS"
stamp done
