#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`, in one call: Hugging Face transformers on the
# course and throughput workloads (engine-core/scripts/hf_peer.py: generate and generate_batch,
# peer records), and lessons 08-11 on both workloads with repeats (records), so the peers and the
# lessons they are compared with are measured on the same card in the same call.
#   OUT=... DEADLINE_S=540 engine-core/scripts/gpu-peers.sh
# PEERS=0 skips transformers; LESSONS="9 11" picks lessons; REPEATS (default 3).
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON_LOGS=$OUT/peers; mkdir -p "$LESSON_LOGS" "$OUT/records"
DEADLINE_S=${DEADLINE_S:-540}
REPEATS=${REPEATS:-3}
source "$(dirname "$0")/gpu-lib.sh"
make_model "$LESSON_LOGS/model.log" || exit 1
MODEL=$AIOS_CACHE/models/qwen3-0.6b-random
stamp "model ready"

# peer WORKLOAD MODE SECS: one transformers run, cut at SECS (or the deadline).
peer() {
  local w=$1 mode=$2 secs=$3
  if ! room "$secs"; then stamp "transformers $mode $w skipped: the deadline"; return; fi
  [[ -f "$LESSON_LOGS/$w.json" ]] || tsx engine-core/scripts/dump-workload.ts "$w" "$LESSON_LOGS/$w.json" > /dev/null
  timeout "$secs" python3 engine-core/scripts/hf_peer.py "$MODEL" "$LESSON_LOGS/$w.json" "$OUT/records" --mode "$mode" > "$LESSON_LOGS/peer-$mode-$w.log" 2>&1
  stamp "transformers $mode $w exit $?: $(grep -E 'tok/s|Error|error' "$LESSON_LOGS/peer-$mode-$w.log" | tail -2 | cut -c1-250)"
}
if [[ "${PEERS:-1}" == 1 ]]; then
  peer course generate 90
  peer course generate_batch 90
  peer throughput generate_batch 170
fi
for n in ${LESSONS:-8 9 10 11}; do
  run_lesson "lesson$n-course" 30 "$n" --no-samples --repeats "$REPEATS" --record
  run_lesson "lesson$n-throughput" $((n == 8 ? 60 : 40)) "$n" --workload throughput --no-samples --no-check --repeats "$REPEATS" --record
done
cp bench-results/*.json "$OUT/records/" 2>/dev/null
tar -czf "$OUT/records.tar.gz" -C "$OUT" records && rm -rf "$OUT/records"
tar -czf "$OUT/peers.tar.gz" -C "$OUT" peers && rm -rf "$LESSON_LOGS"
stamp done
