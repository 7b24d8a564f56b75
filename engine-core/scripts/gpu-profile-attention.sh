#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: Nsight Compute on the naive
# attention kernel of lessons 04, 05 and 06 in one decode step of the long
# workload (request 1, step STEP, all 28 layers), with the L2 left as the
# program left it (--cache-control none) and the clocks alone (--clock-control
# none): kernel time, L2 hit rate and bytes read from DRAM. Lesson 05's README
# asks why its long-prompt decode is slower than lesson 04's; this measures it.
#   STEP=60 LESSONS="4 5 6" engine-core/scripts/gpu-profile-attention.sh   -> $OUT/attention-l0{4,5,6}.csv
# (--kill yes ends each program once its 28 kernels are profiled.)
set -uo pipefail
OUT=${OUT:?set OUT}
STEP=${STEP:-60}
LAYERS=28
source "$(dirname "$0")/gpu-lib.sh"  # make_model
make_model "$OUT/model.log" || exit 1
# Attention launches before the step: the harness's warm-up (2 requests x (1 prefill + 3 decode steps)), the
# estimate's calibration (2 requests x (1 prefill + 2 decode steps), estimateRun), then request 1's prefill and
# STEP - 1 decode steps, 28 layers each (WARMUP_MAX_TOKENS in bench/harness.ts and the demo's order in
# bench/lesson-demo.ts: change them together). --no-check: lesson 02's forward would launch attention too.
skip=$(((2 * 4 + 2 * 3 + 1 + STEP - 1) * LAYERS))
for n in ${LESSONS:-4 5 6}; do
  ncu --clock-control none --cache-control none --target-processes all --kill yes -k regex:attention_kernel \
    --launch-skip "$skip" --launch-count "$LAYERS" \
    --metrics gpu__time_duration.sum,lts__t_sector_hit_rate.pct,dram__bytes_read.sum,lts__t_sectors_op_read.sum \
    --csv tsx engine-core/src/cli/lesson.ts "$n" --workload long --requests 1 --repeats 1 --no-samples --no-check --no-record \
    > "$OUT/attention-l0$n.csv" 2> "$OUT/attention-l0$n.err"
  echo "lesson $n: exit $?, $(grep -c attention_kernel "$OUT/attention-l0$n.csv") metric rows; $(cat "$OUT/attention-l0$n.csv" "$OUT/attention-l0$n.err" | grep -o "[0-9]* pass[es]*" | sort | uniq -c | xargs)"
done
