#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: lesson 02's demo, then lessons
# 03-06 on the course workload and on long prompts, each recorded under
# bench-results/ (copied to $OUT). Usage: gpu-lessons.sh [LONG_BUDGET_S]
set -uo pipefail
OUT=${OUT:?set OUT}
LOGS=$OUT/logs; mkdir -p "$LOGS"
export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
long_budget=${1:-150}
tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$LOGS/model.log" 2>&1
tsx engine-core/src/cli/lesson.ts 2 --max-tokens 32 > "$LOGS/lesson2.log" 2>&1; tail -4 "$LOGS/lesson2.log"
for n in 3 4 5 6; do
  echo "== lesson $n course"
  tsx engine-core/src/cli/lesson.ts $n --record > "$LOGS/lesson$n-course.log" 2>&1; grep -v "^  course" "$LOGS/lesson$n-course.log" | tail -7
done
for n in 3 4 5 6; do
  echo "== lesson $n long"
  tsx engine-core/src/cli/lesson.ts $n --workload long --no-samples --time-budget "$long_budget" --record > "$LOGS/lesson$n-long.log" 2>&1; grep -v "^  long" "$LOGS/lesson$n-long.log" | tail -5
done
mkdir -p "$OUT/records" && cp bench-results/*_lesson0[3-6]_*.json "$OUT/records/" 2>/dev/null
tar -czf "$OUT/records.tar.gz" -C "$OUT" records && rm -rf "$OUT/records"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
