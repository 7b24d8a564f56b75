#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`, in one call: lesson 13 (gpu-prefix.sh: its GPU tests,
# the shared-prefix and throughput workloads on lessons 12 and 13, 3 runs each, the bars), then
# lesson 15's serving benchmark (gpu-serve.sh: offline, then rates inf, 8, 16 and 64 requests/s).
# Everything lands in $OUT (prefix.tar.gz, serve.tar.gz, summary.txt). DEADLINE_S bounds it (default 540).
set -uo pipefail
OUT=${OUT:?set OUT}
T0=$SECONDS
DEADLINE_S=${DEADLINE_S:-540}
PREFIX_S=${PREFIX_S:-300}
timeout 200 vitest run lessons/13-prefix-caching/test/ --reporter=dot > "$OUT/lesson13-tests.log" 2>&1
echo "lesson 13 tests (CPU and GPU) exit $?: $(grep -E "Tests " "$OUT/lesson13-tests.log")" | tee "$OUT/summary.txt"
grep -E "×|AssertionError|Error:" "$OUT/lesson13-tests.log" | cut -c1-240 | head -10 | tee -a "$OUT/summary.txt"
left=$((PREFIX_S - (SECONDS - T0)))
DEADLINE_S=$left PREFIX_TESTS=0 bash engine-core/scripts/gpu-prefix.sh 2>&1 | tee -a "$OUT/summary.txt"  # its GPU tests ran above
left=$((DEADLINE_S - (SECONDS - T0)))
echo "== lesson 15 with ${left} s left" | tee -a "$OUT/summary.txt"
DEADLINE_S=$left RATES=${RATES:-inf,8,16,64} bash engine-core/scripts/gpu-serve.sh 2>&1 | tee -a "$OUT/summary.txt"
