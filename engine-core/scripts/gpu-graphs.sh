#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: lesson 11 (CUDA graphs) in one
# short call: its bf16 GPU test against lesson 10 (graphs replayed for every
# decode step), then the course (3 runs) and throughput (1 run) workloads,
# recorded. DEADLINE_S bounds the whole script. Records and logs in $OUT/graphs.tar.gz.
set -uo pipefail
OUT=${OUT:?set OUT}
G=$OUT/graphs; mkdir -p "$G"
export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
DEADLINE_S=${DEADLINE_S:-200}
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0)) s] $*"; }
room() { (( SECONDS - t0 + $1 <= DEADLINE_S )); }
tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$G/model.log" 2>&1 || tail -5 "$G/model.log"
timeout 90 vitest run lessons/11-cuda-graphs/test/graphs.gpu.test.ts > "$G/graphs-gpu-test.log" 2>&1
stamp "lesson 11 GPU test exit $?: $(grep -E "Tests " "$G/graphs-gpu-test.log")"; grep -E "vs 10 on CUDA|graphs captured|replayed|×|Error" "$G/graphs-gpu-test.log" | head -8
lesson() {
  local name=$1 secs=$2; shift 2
  if ! room "$secs"; then stamp "$name skipped: the deadline"; return; fi
  timeout $(( DEADLINE_S - (SECONDS - t0) )) tsx engine-core/src/cli/lesson.ts "$@" --no-progress > "$G/$name.log" 2>&1
  stamp "$name exit $?"; grep -E "^(course|throughput)[^ ]*:|^repeats:|steps: the host|^roofline|^lesson .* on this card|^equivalence check: (the|DIFF)|graphs|^decode steps" "$G/$name.log" | cut -c1-260
}
lesson lesson11-course 45 11 --no-samples --record
lesson lesson11-throughput 40 11 --workload throughput --no-samples --no-check --repeats 1 --time-budget 60 --record
cp bench-results/*lesson11_bench*.json "$G/" 2>/dev/null
tar -czf "$OUT/graphs.tar.gz" -C "$OUT" graphs && rm -rf "$G"
stamp done
