#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: golden logits from transformers
# (the oracle), our forward compared with them, the whole test suite, and
# lessons 00-02. Everything lands in $OUT (logs bundled in logs.tar.gz).
set -uo pipefail
OUT=${OUT:?set OUT}
LOGS=$OUT/logs; mkdir -p "$LOGS"
export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
M=$AIOS_CACHE/models
step() { echo "== $*"; }

step "models"
for spec in "tiny qwen3-tiny-random" "0.6B qwen3-0.6b-random"; do
  set -- $spec
  [[ -f $M/$2/model.safetensors ]] || tsx engine-core/src/cli/model.ts random --preset "$1" --out "$M/$2" --seed 0 2>&1 | tail -2
done

step "golden logits (transformers)"
export PYTHONUNBUFFERED=1
python3 engine-core/scripts/golden_logits.py "$M/qwen3-tiny-random" "$OUT/golden-qwen3-tiny-random.json" --dtype float32 --device cpu
python3 engine-core/scripts/golden_logits.py "$M/qwen3-0.6b-random" "$LOGS/golden-0.6b-bf16.json" --dtype bfloat16 --device cuda
python3 engine-core/scripts/golden_logits.py "$M/qwen3-0.6b-random" "$LOGS/golden-0.6b-f32.json" --dtype float32 --device cuda
cp "$OUT/golden-qwen3-tiny-random.json" engine-core/test/fixtures/

step "ours vs golden"
cmp() { tsx engine-core/scripts/compare-golden.ts "$@" 2>&1 | tee -a "$LOGS/compare.jsonl"; }
cmp "$M/qwen3-tiny-random" "$OUT/golden-qwen3-tiny-random.json" --device cpu --dtype f32
cmp "$M/qwen3-tiny-random" "$OUT/golden-qwen3-tiny-random.json" --device cuda --dtype bf16
cmp "$M/qwen3-0.6b-random" "$LOGS/golden-0.6b-bf16.json" --device cuda --dtype bf16
cmp "$M/qwen3-0.6b-random" "$LOGS/golden-0.6b-f32.json" --device cuda --dtype bf16
cmp "$M/qwen3-0.6b-random" "$LOGS/golden-0.6b-f32.json" --device cuda --dtype f32

step "tests"
vitest run > "$LOGS/test.log" 2>&1; echo "vitest exit $?"; tail -5 "$LOGS/test.log"

step "lessons"
python3 lessons/00-introduction/scripts/torch_baseline.py "$LOGS/torch.json" > /dev/null
tsx engine-core/src/cli/lesson.ts 0 --baseline "$LOGS/torch.json" --record 2>&1 | tee "$LOGS/lesson0.log" | tail -8
cp bench-results/*environment*.json "$OUT/" 2>/dev/null
tsx engine-core/src/cli/lesson.ts 1 > "$LOGS/lesson1.log" 2>&1; tail -8 "$LOGS/lesson1.log"
tsx engine-core/src/cli/lesson.ts 2 --max-tokens 32 > "$LOGS/lesson2.log" 2>&1; tail -4 "$LOGS/lesson2.log"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
