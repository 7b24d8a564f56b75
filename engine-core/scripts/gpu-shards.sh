#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: one lesson's workload in shards
# (engine-core/src/bench/shards.ts), one process per GPU, all GPUs at once.
# GPU g runs the g-th shard of each round; ROUNDS rounds cover ROUNDS x GPUs shards.
#   COUNT=8 FIRST=1 engine-core/scripts/gpu-shards.sh      (4 GPUs, 2 rounds: shards 1-4, then 5-8)
# With DEADLINE_S, a GPU starts its next shard only if it would end by then,
# judging by its last shard's time (seconds since CALL_START, an epoch time the
# caller sets before setup, default now). The new records (bench-results/shards/,
# where the card's lesson-00 record gives each its roofline) and the logs come
# back as $OUT/shards.tar.gz: one file, since the host returns only a few. Run
# any missing shards later (FIRST, ROUNDS) and merge them where git is:
#   pnpm bench merge <the new records, listed in logs/new-records.txt>
set -uo pipefail
OUT=${OUT:?set OUT}
LESSON=${LESSON:-6}
WORKLOAD=${WORKLOAD:-throughput}
COUNT=${COUNT:?set COUNT, the number of shards}
FIRST=${FIRST:-1}
CALL_START=${CALL_START:-$(date +%s)}
export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
mkdir -p "$OUT/logs" bench-results/shards
marker=$(mktemp); touch "$marker"
mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader)
rounds=${ROUNDS:-$(((COUNT - FIRST + 1 + ${#gpus[@]} - 1) / ${#gpus[@]}))}
echo "${#gpus[@]} GPU(s): $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | xargs); shards $FIRST.. of $COUNT in $rounds round(s)"
tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$OUT/logs/model.log" 2>&1 || { tail -5 "$OUT/logs/model.log"; exit 1; }
for ((g = 0; g < ${#gpus[@]}; g++)); do
  (
    last=0
    for ((r = 0; r < rounds; r++)); do
      k=$((FIRST + r * ${#gpus[@]} + g))
      ((k > COUNT)) && break
      now=$(($(date +%s) - CALL_START))
      if [[ -n "${DEADLINE_S:-}" ]] && ((now + last > DEADLINE_S)); then
        echo "shard $k on GPU ${gpus[$g]}: not started (at ${now} s, the last shard took ${last} s; deadline ${DEADLINE_S} s)"
        break
      fi
      t0=$(date +%s)
      CUDA_VISIBLE_DEVICES=${gpus[$g]} tsx engine-core/src/cli/bench.ts --lesson "$LESSON" --workload "$WORKLOAD" --shard "$k/$COUNT" \
        --no-progress ${TIME_BUDGET_S:+--time-budget "$TIME_BUDGET_S"} > "$OUT/logs/shard$k.log" 2>&1
      rc=$?
      last=$(($(date +%s) - t0))
      echo "shard $k on GPU ${gpus[$g]}: exit $rc, ${last} s (at $(($(date +%s) - CALL_START)) s): $(grep -E "^lesson .*(output tok/s|FAILED)" "$OUT/logs/shard$k.log" | head -1)"
    done
  ) &
done
wait
find bench-results/shards -name '*.json' -newer "$marker" -printf 'shards/%f\n' | sort > "$OUT/logs/new-records.txt"
cat "$OUT/logs/new-records.txt"
tar -czf "$OUT/shards.tar.gz" -C bench-results -T "$OUT/logs/new-records.txt" -C "$OUT" logs && rm -rf "$OUT/logs"
