#!/usr/bin/env bash
# Waits (up to WAIT_S seconds) for the background throughput run of gpu-lessons.sh,
# then copies its log and any new records to $OUT.
set -uo pipefail
OUT=${OUT:?set OUT}
for ((i = 0; i < ${WAIT_S:-580}; i += 10)); do
  pgrep -f "lesson.ts 6 --workload throughput" > /dev/null || break
  sleep 10
done
tr '\r' '\n' < /tmp/throughput.log | grep -v "^ *$" | tail -4
pgrep -f "lesson.ts 6 --workload throughput" > /dev/null && echo "still running" || echo "finished"
cp /tmp/throughput.log "$OUT/" 2>/dev/null
cp bench-results/*throughput* "$OUT/" 2>/dev/null; ls bench-results | grep -c json
