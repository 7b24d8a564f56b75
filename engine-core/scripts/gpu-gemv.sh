#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: the 1..16-token GEMM (gemm_small.cu's gemv, AIOS_GEMV=1)
# and programmatic dependent launch (pdl.cuh, AIOS_PDL=1) checked and timed in one call.
#   1. GPU tests with both switches on: ops (the small-M matmul through gemv at 1..16 tokens), lesson 11's
#      graph replay (exactly the eager logits), then, as time allows, lesson 10's fused forward and lesson
#      09's kernels against the CPU reference
#   2. bench-gemm on Qwen3-0.6B's projections and LM head at 1, 8 and 16 tokens: gemv against cuBLASLt,
#      without and with AIOS_PDL=1 (each shape's calls back to back in a graph, as a decode step runs them)
#   3. gpu-decode-knobs.sh: lesson 11 at batch 1 and on the course workload under each switch and both
#      (KNOBS and WORKLOADS may be given; not recorded)
# DEADLINE_S bounds the call (default 560). Logs in $OUT/gemv.tar.gz and $OUT/decode-knobs.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-560}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir gemv
for t in engine-core/test/ops.gpu.test.ts lessons/11-cuda-graphs/test/graphs.gpu.test.ts; do
  name=$(basename "$t" .ts)
  if ! room 60; then stamp "$name skipped: the deadline"; continue; fi
  AIOS_GEMV=1 AIOS_PDL=1 timeout 150 vitest run "$t" > "$LESSON_LOGS/$name.log" 2>&1
  stamp "$name (AIOS_GEMV=1 AIOS_PDL=1) exit $?: $(grep -E "Tests " "$LESSON_LOGS/$name.log" | sed 's/\x1b\[[0-9;]*m//g')"
  grep -E "×|FAIL|AssertionError|problems" "$LESSON_LOGS/$name.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-240 | head -8
done
for pdl in 0 1; do
  if ! room 60; then stamp "bench-gemm AIOS_PDL=$pdl skipped: the deadline"; continue; fi
  AIOS_GEMV=1 AIOS_PDL=$pdl timeout 90 tsx engine-core/src/cli/bench-gemm.ts --models 0.6B,0.6B-head --m 1,8,16 \
    --json "$LESSON_LOGS/gemm-pdl$pdl.json" > "$LESSON_LOGS/bench-gemm-pdl$pdl.log" 2>&1
  stamp "bench-gemm AIOS_GEMV=1 AIOS_PDL=$pdl exit $?"
  grep -E "^shape|^0\.6B|^  0\.6B.* M=" "$LESSON_LOGS/bench-gemm-pdl$pdl.log" | cut -c1-160
done
pack_logs
KNOBS=${KNOBS:-AIOS_GEMV=1;AIOS_PDL=1;AIOS_GEMV=1 AIOS_PDL=1} WORKLOADS=${WORKLOADS:-batch1 course} REPEATS=${REPEATS:-2} \
  DEADLINE_S=$((DEADLINE_S - (SECONDS - GPU_LIB_T0))) bash "$(dirname "$0")/gpu-decode-knobs.sh"
for t in lessons/10-fused-layers/test/fused.gpu.test.ts engine-core/test/flash-attention.gpu.test.ts; do
  name=$(basename "$t" .ts)
  if ! room 70; then stamp "$name skipped: the deadline"; continue; fi
  AIOS_GEMV=1 AIOS_PDL=1 timeout 120 vitest run "$t" > "$OUT/$name.log" 2>&1
  stamp "$name (AIOS_GEMV=1 AIOS_PDL=1) exit $?: $(grep -E "Tests " "$OUT/$name.log" | sed 's/\x1b\[[0-9;]*m//g')"
done
stamp done
