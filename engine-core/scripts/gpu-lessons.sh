#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: the engine lessons on the course workload,
# each run repeated and recorded with its median and spread (bench/harness.ts runRepeated).
#
#   OUT=... engine-core/scripts/gpu-lessons.sh                   lessons 03-06: 03 once (it is the slow one, at most
#                                                                BUDGET3 s), 04-06 REPEATS times each (default 3)
#   LESSONS="5 6" OUT=... engine-core/scripts/gpu-lessons.sh      only some lessons (to fit one 10-minute call)
#   LESSON0=1 ...                                                 lesson 00 first (the card's roofline, PyTorch beside it)
#   LONG=1 ...                                                    also lessons 04-06 on long prompts (1 run each, 300 s budget)
#
# Records land in $OUT/records.tar.gz (copy them into bench-results/ on a machine with the
# repository's git history and run `pnpm chart`: staleness is decided there), logs in
# $OUT/logs.tar.gz. Every run prints its plan and estimate first; the summary lines are echoed.
set -uo pipefail
OUT=${OUT:?set OUT}
LOGS=$OUT/logs; mkdir -p "$LOGS"
source "$(dirname "$0")/gpu-lib.sh"  # make_model
REPEATS=${REPEATS:-3}
REPEATS3=${REPEATS3:-1}
BUDGET3=${BUDGET3:-240}
make_model "$LOGS/model.log"
if [[ "${LESSON0:-0}" == 1 ]]; then
  python3 lessons/00-introduction/scripts/torch_baseline.py "$LOGS/torch.json" > /dev/null 2>&1
  tsx engine-core/src/cli/lesson.ts 0 --baseline "$LOGS/torch.json" --record > "$LOGS/lesson0.log" 2>&1; grep -E "^(copy|gemm|per op|recorded)" "$LOGS/lesson0.log"
fi
summary='^(estimate|course|long|repeats|equivalence check: (the|DIFF)|lesson|this run|roofline|recorded|KV pool)'
for n in ${LESSONS:-3 4 5 6}; do
  echo "== lesson $n course"
  if [[ $n == 3 ]]; then args=(--repeats "$REPEATS3" --time-budget "$BUDGET3"); else args=(--repeats "$REPEATS"); fi
  tsx engine-core/src/cli/lesson.ts "$n" "${args[@]}" --no-progress --record > "$LOGS/lesson$n-course.log" 2>&1; echo "exit $?"
  grep -E "$summary" "$LOGS/lesson$n-course.log"
done
if [[ "${LONG:-0}" == 1 ]]; then
  for n in 4 5 6; do
    echo "== lesson $n long"
    tsx engine-core/src/cli/lesson.ts $n --workload long --repeats 1 --no-samples --time-budget 300 --no-progress --record > "$LOGS/lesson$n-long.log" 2>&1
    grep -E "$summary" "$LOGS/lesson$n-long.log"
  done
fi
mkdir -p "$OUT/records" && cp bench-results/*.json "$OUT/records/" 2>/dev/null
tar -czf "$OUT/records.tar.gz" -C "$OUT" records && rm -rf "$OUT/records"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
