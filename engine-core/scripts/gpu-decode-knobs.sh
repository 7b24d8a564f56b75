#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`: lesson 11 (or LESSON) on the course workload and its
# first request alone (batch 1) under several settings of the decode path's switches, in one call, so
# the settings compare on the same card at the same time (not recorded: a timing experiment; the
# settings that win become the defaults and are measured again by gpu-decode.sh). The first setting is
# run again at the end: the drift of the card over the call.
#   OUT=... KNOBS="AIOS_DECODE_STAGES=4;AIOS_DECODE_MIN_TILES=1" bash engine-core/scripts/gpu-decode-knobs.sh
#   WORKLOADS="course batch1 throughput" REPEATS=2 DEADLINE_S=540 (batchN: the course's first N requests)
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-540}
REPEATS=${REPEATS:-2}
LESSON=${LESSON:-11}
WORKLOADS=${WORKLOADS:-course batch1}
source "$(dirname "$0")/gpu-lib.sh"
IFS=';' read -r -a settings <<< "base;${KNOBS:-};base"
# A switch a setting names must not be set already: it is unset after its setting, and "base" must mean none.
for s in "${settings[@]}"; do
  for e in $s; do
    [[ $e == base ]] && continue
    name=${e%%=*}
    if [[ -n ${!name+x} ]]; then echo "gpu-decode-knobs.sh: $name is set in the environment; unset it (KNOBS sets it per setting)"; exit 2; fi
  done
done
logs_dir decode-knobs
make_model "$LESSON_LOGS/model.log" && stamp "model ready"
i=0
for s in "${settings[@]}"; do
  [[ -z $s ]] && continue
  i=$((i + 1))
  envs=(); [[ $s != base ]] && read -r -a envs <<< "$s"
  for w in $WORKLOADS; do
    args=(--no-samples --no-check --repeats "$REPEATS" --no-record)
    case $w in batch[0-9]*) args+=(--requests "${w#batch}") ;; throughput) args+=(--workload throughput) ;; esac
    echo "## $i $s $w"
    for e in "${envs[@]}"; do export "${e?}"; done
    run_lesson "k$i-$w" 20 "$LESSON" "${args[@]}" | grep -E "^repeats:|steps: the host|exit"
    for e in "${envs[@]}"; do unset "${e%%=*}"; done
  done
done
pack_logs
stamp done
