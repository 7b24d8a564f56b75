#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: where the host's time goes between decode steps, for
# lesson 11 and lesson 14 at TP=1 (its rank machinery over one GPU) on the same model and workload:
# each run once plain (the step accounting lines) and once under V8's sampling profiler (--cpu-prof,
# every thread: rank 0 is the main thread), the profiles gzipped for cpuprofile_summary.py.
#   OUT=... bash engine-core/scripts/gpu-host-profile.sh     -> $OUT/host-profile.tar.gz
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-420}
WORKLOAD=${WORKLOAD:-throughput}
source "$(dirname "$0")/gpu-lib.sh"
logs_dir host-profile
make_model "$LESSON_LOGS/model.log" || exit 1
flags=(--workload "$WORKLOAD" --no-samples --no-check --repeats 1 --no-record)
if [[ -z ${PROFILE_ONLY:-} ]]; then
  run_lesson "lesson11-$WORKLOAD" 40 11 "${flags[@]}"
  AIOS_TP_TRACE=1 run_lesson "lesson14-tp1-$WORKLOAD" 60 14 "${flags[@]}" --tp 1
  grep -h "tp trace" "$LESSON_LOGS"/lesson14-*.log
fi
for l in 11 14; do
  dir=$LESSON_LOGS/cpuprof-$l
  mkdir -p "$dir"
  extra=(); [[ $l == 14 ]] && extra=(--tp 1)
  # Node refuses --cpu-prof in NODE_OPTIONS; tsx hands its own node flags on.
  TSX_FLAGS="--cpu-prof --cpu-prof-dir=$dir --cpu-prof-interval 100" run_lesson "lesson$l-$WORKLOAD-cpuprof" 60 "$l" "${flags[@]}" "${extra[@]}"
  gzip -q "$dir"/*.cpuprofile 2>/dev/null
  ls -la "$dir"
done
pack_logs
stamp done
