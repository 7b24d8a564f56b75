#!/usr/bin/env bash
# Lesson 09's kernels on the GPU host, in one call, after `source .gpu/setup.sh`
# (node, tsx and vitest on PATH, the addon built):
#   1. the addon is rebuilt if stale; the kernels' registers, spills and tensor-core
#      instructions read off the binary (cuobjdump)
#   2. the kernels on the CPU emulator (the same .cu sources, a quick sanity line)
#   3. the GPU suite: every prefill and decode version vs the CPU reference on fresh
#      random steps, poisoned outputs, each case twice (a race shows as a moving result),
#      vs lesson 08's kernel too; one PASS/FAIL line per check in checks.log
#   4. PyTorch SDPA (flash backend) on the bench's shapes: the peer
#   5. the kernel bench: every version timed (CUDA events, median), checked against
#      lesson 08's kernel first; the record goes to bench-results/ and $OUT
# Every step runs under its own timeout and the script keeps going past a failure.
# What comes back in $OUT (6 files): summary.txt (read this first), checks.log,
# bench.log, sdpa.json, the *_lesson09_kernel_*.json record (or kernel-partial.json if
# the bench was cut short), logs.tar.gz.
# About 3-4 minutes; every step's timeout is cut to what is left of DEADLINE_S (default 560 s),
# so the whole script ends inside one 10-minute call with its files written.
# Set AIOS_COMMIT to the commit being measured where .git is absent.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-560}
RESERVE_S=20  # seconds kept for the summary and the tar
source "$(dirname "$0")/gpu-lib.sh"  # summary_start, budget, step, note, sdpa_peer, kernel_record
summary_start

step "card"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw,memory.used --format=csv > "$LOGS/nvidia-smi.txt" 2>&1
note "$(tail -1 "$LOGS/nvidia-smi.txt")"

step "addon (incremental rebuild) and what ptxas made of the kernels"
(cd native && timeout "$(budget 180)" cmake-js compile --log-level warn) > "$LOGS/build.log" 2>&1 || { note "BUILD FAILED: tail of logs/build.log:"; tail -30 "$LOGS/build.log" | tee -a "$SUMMARY"; }
node -e "const n=require('./native'); const b=n.backendInfo(); console.log(JSON.stringify(b)); if(!b.cudaUsable||typeof n.flashPrefill!=='function') process.exit(1)" > "$LOGS/backend.json" 2>&1 \
  && note "backend: $(cat "$LOGS/backend.json")" || note "ADDON NOT USABLE WITH CUDA AND LESSON 09: $(cat "$LOGS/backend.json")"
NODE_BIN=native/build/Release/aios_native.node
if command -v cuobjdump > /dev/null && [[ -f $NODE_BIN ]]; then
  cuobjdump --dump-resource-usage "$NODE_BIN" > "$LOGS/resource-usage.txt" 2>&1
  cuobjdump --dump-sass "$NODE_BIN" > "$LOGS/sass.txt" 2>&1
  # one line per lesson-09 kernel: registers, stack (local memory), shared memory; and its HMMA/LDSM/LDGSTS counts
  python3 - "$LOGS/resource-usage.txt" "$LOGS/sass.txt" <<'PY' | tee -a "$SUMMARY"
import re, sys, collections
res = open(sys.argv[1]).read().split("Function ")
for block in res[1:]:
    name = block.split(":", 1)[0]
    if not any(k in name for k in ("prefill_v", "decode_scalar", "decode_mma", "combine_kernel")): continue
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", block)
    short = re.sub(r"_ZN4aios4cuda5flash\w*?_GLOBAL__N__\w+?_(\d+)", "", name)[:90]
    print(f"  {short:<90} {m.group(0) if m else block[:120].strip()}")
counts = collections.defaultdict(collections.Counter)
fn = None
for line in open(sys.argv[2]):
    if "Function :" in line: fn = line.split("Function :")[1].strip()
    elif fn and any(k in fn for k in ("prefill_v2", "decode_mma")):
        for op in ("HMMA", "LDSM", "LDGSTS", "LDL", "STL"):
            if re.search(rf"\b{op}\b", line): counts[fn][op] += 1
for fn, c in counts.items():
    print(f"  sass {fn[-70:]:<70} " + " ".join(f"{k}={c[k]}" for k in ("HMMA", "LDSM", "LDGSTS", "LDL", "STL")))
PY
else
  note "cuobjdump or the addon is missing: no resource report"
fi

step "CPU emulator of the same kernels"
timeout "$(budget 40)" native/build/Release/flash_emu --full > "$LOGS/flash-emu.log" 2>&1
note "$(grep -E '^FAIL' "$LOGS/flash-emu.log" | head -5)$(tail -1 "$LOGS/flash-emu.log")"

step "GPU suite: every version vs the CPU reference"
: > "$OUT/checks.log"
AIOS_FLASH_CHECK_LOG=$OUT/checks.log timeout "$(budget "${SUITE_S:-180}")" vitest run --reporter=verbose engine-core/test/flash-attention.gpu.test.ts engine-core/test/flash-attention.test.ts \
  > "$LOGS/gpu-tests.log" 2>&1
note "vitest exit $? ($(grep -cE '^PASS' "$OUT/checks.log") checks passed, $(grep -cE '^FAIL' "$OUT/checks.log") failed)"
grep -E '^FAIL' "$OUT/checks.log" | head -25 | tee -a "$SUMMARY"
grep -E 'Tests |Test Files' "$LOGS/gpu-tests.log" | tee -a "$SUMMARY"

step "PyTorch SDPA (flash backend): the peer"
sdpa_peer 120

step "kernel bench"
touch "$LOGS/.before-bench"
timeout "$(budget 240)" tsx engine-core/src/cli/bench-kernels.ts "${PEER[@]}" --json "$OUT/kernel-partial.json" > "$OUT/bench.log" 2>&1
note "bench exit $? (1: a version failed its check or errored; 124: cut at its timeout; see bench.log)"
grep -E 'ERROR|FAIL|NaN!' "$OUT/bench.log" | head -20 | tee -a "$SUMMARY"
sed -n '/^shape /,$p' "$OUT/bench.log" | tee -a "$SUMMARY"
kernel_record "$LOGS/.before-bench"

step "done"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
