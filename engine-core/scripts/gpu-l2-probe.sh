#!/usr/bin/env bash
# On the GPU host (no Node needed): builds native/probes/l2_prefetch_probe.cu with the host's nvcc and
# cuBLAS and runs it with no attention stand-in and with ATTN_MB (default 46: the course step's KV
# bytes a layer) of streamed memory between q/k/v and o. Output: stdout (and $OUT/l2-probe.log when OUT is set).
set -euo pipefail
ATTN_MB=${ATTN_MB:-46}
REPLAYS=${REPLAYS:-30}
bin=/tmp/l2_prefetch_probe
nvcc -O3 -arch=sm_90 -std=c++17 native/probes/l2_prefetch_probe.cu -lcublas -o "$bin"
{
  echo "# gpu-l2-probe.sh on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) at ${AIOS_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)} ($(date -u +%F)), $REPLAYS replays a setting, medians"
  "$bin" 0 "$REPLAYS"
  "$bin" "$ATTN_MB" "$REPLAYS"
} 2>&1 | tee "${OUT:-/tmp}/l2-probe.log"
