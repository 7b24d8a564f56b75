#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`. In one call, on one card:
#   lesson 00 (the card's roofline, with PyTorch's numbers beside it), the CUDA tests,
#   lesson 02's demo, lessons 03-06 on the course workload, lessons 04-06 on long
#   prompts (and 03 too when LONG3_BUDGET_S is set), every run recorded.
#   (Lesson 06 on the throughput workload takes longer than one call: gpu-shards.sh.)
# Everything lands in $OUT as records.tar.gz and logs.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
LOGS=$OUT/logs; mkdir -p "$LOGS"
export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$LOGS/model.log" 2>&1
if [[ "${SKIP_LESSON0:-0}" != 1 ]]; then
  python3 lessons/00-introduction/scripts/torch_baseline.py "$LOGS/torch.json" > /dev/null 2>&1
  tsx engine-core/src/cli/lesson.ts 0 --baseline "$LOGS/torch.json" --record > "$LOGS/lesson0.log" 2>&1; sed -n '9,20p' "$LOGS/lesson0.log"
fi
vitest run engine-core/test/ops.gpu.test.ts engine-core/test/qwen3.gpu.test.ts engine-core/test/tensor.test.ts > "$LOGS/gpu-tests.log" 2>&1; echo "gpu tests exit $?"; grep -E "Tests " "$LOGS/gpu-tests.log"
tsx engine-core/src/cli/lesson.ts 2 --max-tokens 32 > "$LOGS/lesson2.log" 2>&1; tail -3 "$LOGS/lesson2.log"
for n in 3 4 5 6; do
  echo "== lesson $n course"
  tsx engine-core/src/cli/lesson.ts $n --record > "$LOGS/lesson$n-course.log" 2>&1; grep -E "^course:|^lesson|^KV|^concat|^roofline" "$LOGS/lesson$n-course.log"
done
for n in ${LONG3_BUDGET_S:+3} 4 5 6; do
  echo "== lesson $n long"
  tsx engine-core/src/cli/lesson.ts $n --workload long --no-samples --time-budget "${LONG3_BUDGET_S:-300}" --record > "$LOGS/lesson$n-long.log" 2>&1; grep -E "^long:|^lesson|^roofline" "$LOGS/lesson$n-long.log"
done
mkdir -p "$OUT/records" && cp bench-results/*.json "$OUT/records/" 2>/dev/null
tar -czf "$OUT/records.tar.gz" -C "$OUT" records && rm -rf "$OUT/records"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
