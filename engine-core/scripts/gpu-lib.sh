# Sourced by the gpu-*.sh scripts (on the GPU host, after `source .gpu/setup.sh`):
# what every one of them needs, written once.
#
# Lesson runs under a deadline (gpu-batched, gpu-final, gpu-graphs):
#   DEADLINE_S, LESSON_LOGS set; then   run_lesson NAME EXPECTED_S LESSON_ARGS...
# A call's logs and the records it wrote, tarred (gpu-decode, gpu-last, gpu-prefix, gpu-profile-decode, gpu-sampling):
#   logs_dir NAME first (sets LESSON_LOGS), pack_logs [PATTERN...] last.
# Steps with a summary file (gpu-kernels, gpu-prefill):
#   DEADLINE_S, RESERVE_S set; summary_start; then   step TITLE, note TEXT, $(budget N),
#   sdpa_peer SECS BENCH_ARGS..., kernel_record MARKER

GPU_LIB_T0=$SECONDS

# stamp TEXT: "[elapsed s] TEXT".
stamp() { echo "[$((SECONDS - GPU_LIB_T0)) s] $*"; }

# room N: true when N more seconds fit before DEADLINE_S (counted from sourcing this file).
room() { (( SECONDS - GPU_LIB_T0 + $1 <= DEADLINE_S )); }

# make_model LOG: the seeded random Qwen3-0.6B model the lessons default to on a GPU (made once per
# machine, its output in LOG); on failure the log's tail, and a non-zero status.
make_model() {
  export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
  tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$1" 2>&1 || { tail -5 "$1"; return 1; }
}

# run_lesson NAME EXPECTED_S ARGS...: `pnpm lesson ARGS` (node flags for tsx in TSX_FLAGS, split on spaces) into $LESSON_LOGS/NAME.log if EXPECTED_S
# seconds fit, cut at the deadline; then its result lines.
run_lesson() {
  local name=$1 secs=$2; shift 2
  if ! room "$secs"; then stamp "$name skipped: the deadline"; return; fi
  timeout $((DEADLINE_S - (SECONDS - GPU_LIB_T0))) tsx ${TSX_FLAGS:-} engine-core/src/cli/lesson.ts "$@" --no-progress > "$LESSON_LOGS/$name.log" 2>&1
  stamp "$name exit $?"
  grep -E "^(course|throughput|long|shared-prefix)[^ ]*:|^repeats:|steps: the host|^roofline|^lesson .* on this card|^KV pool|^preemptions|^prefix cache|^equivalence check: (the|DIFF)|^workspace|graphs|^decode steps" "$LESSON_LOGS/$name.log" | cut -c1-300
}

# logs_dir NAME: LESSON_LOGS=$OUT/NAME (made), marked so that pack_logs finds the records written after this.
logs_dir() {
  LESSON_LOGS=$OUT/$1
  mkdir -p "$LESSON_LOGS"
  touch "$LESSON_LOGS/.mark"
}

# pack_logs [PATTERN...]: the bench-results/ records named PATTERN (default *.json) written since logs_dir
# copied into $LESSON_LOGS, which is then tarred to $OUT/NAME.tar.gz and removed.
pack_logs() {
  local name p
  name=$(basename "$LESSON_LOGS")
  for p in "${@:-*.json}"; do find bench-results -maxdepth 1 -name "$p" -newer "$LESSON_LOGS/.mark" -exec cp {} "$LESSON_LOGS/" \; ; done
  rm -f "$LESSON_LOGS/.mark"
  tar -czf "$OUT/$name.tar.gz" -C "$OUT" "$name" && rm -rf "$LESSON_LOGS"
}

# $(budget N): N seconds, or what is left before the deadline keeping RESERVE_S for the end, at least 3.
budget() { local left=$((DEADLINE_S - (SECONDS - GPU_LIB_T0) - RESERVE_S)); ((left < $1)) && echo $((left > 3 ? left : 3)) || echo "$1"; }
step() { echo "== $* ($((SECONDS - GPU_LIB_T0))s)" | tee -a "$SUMMARY"; }
note() { echo "$*" | tee -a "$SUMMARY"; }

# summary_start: $SUMMARY (read first, emptied) and $LOGS (the details, tarred at the end) under $OUT.
summary_start() {
  LOGS=$OUT/logs
  mkdir -p "$LOGS"
  SUMMARY=$OUT/summary.txt
  : > "$SUMMARY"
  export PYTHONUNBUFFERED=1
  [[ -n "${AIOS_COMMIT:-}" || -d .git ]] || note "warning: AIOS_COMMIT is not set and there is no .git: the record's commit will say 'unknown'"
}

# sdpa_peer SECS BENCH_ARGS...: PyTorch SDPA (flash backend) on the shapes bench-kernels would run
# with BENCH_ARGS, into $OUT/sdpa.json; sets PEER to the bench's --peer argument (empty if it failed).
sdpa_peer() {
  local secs=$1; shift
  tsx engine-core/src/cli/bench-kernels.ts "$@" --shapes-json "$LOGS/shapes.json" > /dev/null 2>&1
  timeout "$(budget "$secs")" python3 engine-core/scripts/sdpa_peer.py "$LOGS/shapes.json" "$OUT/sdpa.json" > "$LOGS/sdpa.log" 2>&1
  note "sdpa_peer exit $?: $(head -1 "$LOGS/sdpa.log")"
  grep -E 'ERROR|Error' "$LOGS/sdpa.log" | head -5 | tee -a "$SUMMARY"
  PEER=()
  if [[ -s "$OUT/sdpa.json" ]]; then PEER=(--peer "$OUT/sdpa.json"); fi
}

# kernel_record MARKER: the kernel record the bench wrote after MARKER (a file touched before it)
# is copied to $OUT and kernel-partial.json dropped; else kernel-partial.json stays. Sets RECORD
# to whichever holds the numbers.
kernel_record() {
  RECORD=$(find bench-results -maxdepth 1 -name '*_lesson09_kernel_*.json' -newer "$1" | head -1)
  if [[ -n "$RECORD" ]]; then
    cp "$RECORD" "$OUT/" && rm -f "$OUT/kernel-partial.json"
    note "record: $(basename "$RECORD")"
  else
    RECORD=$OUT/kernel-partial.json
    note "no complete record; what was measured is in kernel-partial.json (settings.partial says how far it got)"
  fi
}
