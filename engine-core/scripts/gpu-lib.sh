# Sourced by the gpu-*.sh scripts (on the GPU host, after `source .gpu/setup.sh`):
# what every one of them needs, written once.
#
# Lesson runs under a deadline (gpu-batched, gpu-final, gpu-graphs):
#   DEADLINE_S, LESSON_LOGS set; then   run_lesson NAME EXPECTED_S LESSON_ARGS...
# Steps with a summary file (gpu-kernels, gpu-prefill):
#   SUMMARY, DEADLINE_S, RESERVE_S set; then   step TITLE, note TEXT, $(budget N)

GPU_LIB_T0=$SECONDS

# stamp TEXT: "[elapsed s] TEXT".
stamp() { echo "[$((SECONDS - GPU_LIB_T0)) s] $*"; }

# room N: true when N more seconds fit before DEADLINE_S (counted from sourcing this file).
room() { (( SECONDS - GPU_LIB_T0 + $1 <= DEADLINE_S )); }

# The seeded random Qwen3-0.6B model the lessons default to on a GPU (made once per machine).
make_model() {
  export AIOS_CACHE=${AIOS_CACHE:-/tmp/aios-cache}
  tsx engine-core/src/cli/model.ts random --preset 0.6B --out "$AIOS_CACHE/models/qwen3-0.6b-random" --seed 0 > "$1" 2>&1 || tail -5 "$1"
}

# run_lesson NAME EXPECTED_S ARGS...: `pnpm lesson ARGS` into $LESSON_LOGS/NAME.log if EXPECTED_S
# seconds fit, cut at the deadline; then its result lines.
run_lesson() {
  local name=$1 secs=$2; shift 2
  if ! room "$secs"; then stamp "$name skipped: the deadline"; return; fi
  timeout $((DEADLINE_S - (SECONDS - GPU_LIB_T0))) tsx engine-core/src/cli/lesson.ts "$@" --no-progress > "$LESSON_LOGS/$name.log" 2>&1
  stamp "$name exit $?"
  grep -E "^(course|throughput|long)[^ ]*:|^repeats:|steps: the host|^roofline|^lesson .* on this card|^KV pool|^preemptions|^equivalence check: (the|DIFF)|^workspace|graphs|^decode steps" "$LESSON_LOGS/$name.log" | cut -c1-300
}

# $(budget N): N seconds, or what is left before the deadline keeping RESERVE_S for the end, at least 3.
budget() { local left=$((DEADLINE_S - (SECONDS - GPU_LIB_T0) - RESERVE_S)); ((left < $1)) && echo $((left > 3 ? left : 3)) || echo "$1"; }
step() { echo "== $* ($((SECONDS - GPU_LIB_T0))s)" | tee -a "$SUMMARY"; }
note() { echo "$*" | tee -a "$SUMMARY"; }
