#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: programmatic dependent launch (pdl.cuh, AIOS_PDL=1)
# checked and measured in one call.
#   1. with AIOS_PDL=1: the GPU tests whose kernels take it (ops, lesson 10's fused kernels and forward,
#      lesson 11's graph replay equal to the eager logits, lesson 09's kernels against the CPU reference)
#   2. lesson 11 on the throughput and course workloads and at batch 1, then lesson 10 at batch 1
#      (eager launches), each without and with AIOS_PDL=1, one after the other (REPEATS runs each,
#      recorded: a record's settings.env says AIOS_PDL=1)
# DEADLINE_S bounds the call (default 400). Logs and records in $OUT/pdl.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-400}
REPEATS=${REPEATS:-3}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir pdl
make_model "$LESSON_LOGS/model.log" && stamp "model ready"
for t in engine-core/test/ops.gpu.test.ts lessons/10-fused-layers/test/fused.gpu.test.ts lessons/11-cuda-graphs/test/graphs.gpu.test.ts \
         engine-core/test/flash-attention.gpu.test.ts; do
  name=$(basename "$t" .ts)-pdl
  if ! room 60; then stamp "$name skipped: the deadline"; continue; fi
  AIOS_PDL=1 timeout 150 vitest run "$t" > "$LESSON_LOGS/$name.log" 2>&1
  stamp "$name exit $?: $(grep -E "Tests " "$LESSON_LOGS/$name.log" | sed 's/\x1b\[[0-9;]*m//g')"
  grep -E "×|FAIL|AssertionError" "$LESSON_LOGS/$name.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-240 | head -8
done
for pdl in 0 1; do
  AIOS_PDL=$pdl run_lesson "lesson11-batch1-pdl$pdl" 15 11 --requests 1 --no-samples --no-check --repeats "$REPEATS" --record
  AIOS_PDL=$pdl run_lesson "lesson11-course-pdl$pdl" 15 11 --no-samples --no-check --repeats "$REPEATS" --record
done
for pdl in 0 1; do
  AIOS_PDL=$pdl run_lesson "lesson11-throughput-pdl$pdl" 30 11 --workload throughput --no-samples --no-check --repeats "$REPEATS" --record
done
for pdl in 0 1; do
  AIOS_PDL=$pdl run_lesson "lesson10-batch1-pdl$pdl" 15 10 --requests 1 --no-samples --no-check --repeats "$REPEATS" --no-record
done
pack_logs
stamp done
