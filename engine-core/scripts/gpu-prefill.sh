#!/usr/bin/env bash
# Prefill only (issue 10's prefill bar), in one short call after `source .gpu/setup.sh`:
#   1. the addon (incremental rebuild if stale); registers/stack of the prefill kernels (cuobjdump)
#   2. the prefill kernels on the CPU emulator (a sanity line)
#   3. the GPU suite's prefill cases: every prefill version vs the CPU reference (poisoned outputs,
#      each case twice, vs lesson 08's kernel too); one PASS/FAIL line per check in checks.log
#   4. PyTorch SDPA (flash backend) on the 4 prefill shapes: the peer
#   5. the kernel bench on the prefill shapes (`--only prefill`), every version, with the peer;
#      the `kernel` record to bench-results/ and $OUT
# and prints a short table last: v4, v5 and SDPA per shape, v5's share of SDPA against the 60% bar.
# Hard deadline DEADLINE_S (default 150 s): each step's timeout is cut to what is left, keeping
# 12 s for the table and the tar. What comes back in $OUT (at most 6 files): summary.txt,
# checks.log, bench.log, sdpa.json, the *_lesson09_kernel_*.json record (or kernel-partial.json
# if the bench was cut short), logs.tar.gz. Set AIOS_COMMIT to the commit being measured.
set -uo pipefail
OUT=${OUT:?set OUT}
DEADLINE_S=${DEADLINE_S:-150}
RESERVE_S=12  # seconds kept for the summary and the tar
source "$(dirname "$0")/gpu-lib.sh"  # summary_start, budget, step, note, sdpa_peer, kernel_record
summary_start

step "card"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,memory.used --format=csv > "$LOGS/nvidia-smi.txt" 2>&1
note "$(tail -1 "$LOGS/nvidia-smi.txt")"

step "addon (incremental rebuild) and the prefill kernels' resources"
(cd native && timeout "$(budget 60)" cmake-js compile --log-level warn) > "$LOGS/build.log" 2>&1 || { note "BUILD FAILED: tail of logs/build.log:"; tail -20 "$LOGS/build.log" | tee -a "$SUMMARY"; }
NODE_BIN=native/build/Release/aios_native.node
if command -v cuobjdump > /dev/null && [[ -f $NODE_BIN ]]; then
  timeout "$(budget 15)" cuobjdump --dump-resource-usage "$NODE_BIN" > "$LOGS/resource-usage.txt" 2>&1
  timeout "$(budget 20)" cuobjdump --dump-sass "$NODE_BIN" > "$LOGS/sass.txt" 2>&1
  # registers, stack, local memory of the bf16 tensor-core prefills; HMMA/LDSM/local-memory counts of v4 and v5 (bf16, D128)
  python3 - "$LOGS/resource-usage.txt" "$LOGS/sass.txt" <<'PY' | tee -a "$SUMMARY"
import re, sys, collections
for block in open(sys.argv[1]).read().split("Function ")[1:]:
    name = block.split(":", 1)[0]
    if "bfloat16" not in name or not ("prefill_tc" in name or "prefill_v5" in name): continue
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", block)
    short = re.sub(r"^.*?(prefill_\w+?_kernel)", r"\1", name)[:70]
    print(f"  {short:<70} {m.group(0) if m else '?'}")
counts, fn = collections.defaultdict(collections.Counter), None
for line in open(sys.argv[2]):
    if "Function :" in line: fn = line.split("Function :")[1].strip()
    elif fn and "bfloat16Li128" in fn and ("prefill_v5" in fn or "Li2ELi32ELi3E" in fn):
        for op in ("HMMA", "LDSM", "MUFU.EX2", "BAR", "LDL", "STL"):
            if re.search(rf"\b{re.escape(op)}\b", line): counts[fn][op] += 1
for fn, c in counts.items():
    print(f"  sass {'v5' if 'prefill_v5' in fn else 'v4'} bf16 D128: " + " ".join(f"{k}={c[k]}" for k in ("HMMA", "LDSM", "MUFU.EX2", "BAR", "LDL", "STL")))
PY
else
  note "cuobjdump or the addon is missing: no resource report"
fi

step "CPU emulator: the prefill kernels"
timeout "$(budget 20)" native/build/Release/flash_emu --only prefill > "$LOGS/flash-emu.log" 2>&1
note "$(grep -E '^FAIL' "$LOGS/flash-emu.log" | head -5)$(tail -1 "$LOGS/flash-emu.log")"

step "GPU suite, prefill cases: every prefill version vs the CPU reference"
: > "$OUT/checks.log"
AIOS_FLASH_CHECK_LOG=$OUT/checks.log timeout "$(budget 45)" vitest run --reporter=verbose engine-core/test/flash-attention.gpu.test.ts -t 'prefill v' \
  > "$LOGS/gpu-tests.log" 2>&1
note "vitest exit $? ($(grep -cE '^PASS' "$OUT/checks.log") checks passed, $(grep -cE '^FAIL' "$OUT/checks.log") failed)"
grep -E '^FAIL' "$OUT/checks.log" | head -15 | tee -a "$SUMMARY"
grep -E 'Tests ' "$LOGS/gpu-tests.log" | tee -a "$SUMMARY"

step "PyTorch SDPA (flash backend) on the prefill shapes"
sdpa_peer 35 --only prefill

step "kernel bench, prefill shapes"
touch "$LOGS/.before-bench"
timeout "$(budget 60)" tsx engine-core/src/cli/bench-kernels.ts --only prefill "${PEER[@]}" --json "$OUT/kernel-partial.json" > "$OUT/bench.log" 2>&1
note "bench exit $? (1: a version failed its check or errored; 124: cut at its timeout; see bench.log)"
grep -E 'ERROR|FAIL|NaN!' "$OUT/bench.log" | head -10 | tee -a "$SUMMARY"
kernel_record "$LOGS/.before-bench"

step "done; table"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
# The short table, last: median TFLOP/s of v4 and v5, SDPA's, v5's share of SDPA (the bar is 60%).
[[ -s "$RECORD" ]] && node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const f = (x) => (typeof x === "number" && isFinite(x) ? x.toFixed(1) : "-").padStart(7);
console.log(`${"shape".padEnd(22)} ${"v4".padStart(7)} ${"v5".padStart(7)} ${"SDPA".padStart(7)}  v5/v4  v5/SDPA (need 60%)  v5 check`);
for (const s of r.results.shapes.filter((x) => x.phase === "prefill")) {
  const v = (n) => s.versions.find((x) => x.version === n);
  const v4 = v("v4")?.tflops, v5 = v("v5")?.tflops, p = s.peer?.tflops;
  const e = !v("v5") ? "-" : v("v5").error ?? (typeof v("v5").relErrVsLesson08 === "number" ? v("v5").relErrVsLesson08.toExponential(1) : "NaN");
  console.log(`${s.name.padEnd(22)} ${f(v4)} ${f(v5)} ${f(p)}  ${v4 && v5 ? (v5 / v4).toFixed(2) : "  -"}   ${p && v5 ? (100 * v5 / p).toFixed(0).padStart(3) + "%" : "   -"}                ${e}`);
}' "$RECORD" 2>&1 | tee -a "$SUMMARY"
note "total $((SECONDS - GPU_LIB_T0))s"
