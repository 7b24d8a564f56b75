#!/usr/bin/env bash
# On the GPU host, after `source .gpu/setup.sh`, in one call: lesson 12 (gpu-sampling.sh: GPU tests,
# lessons 11 and 12 on the throughput workload, the sampler bench) and lesson 13 (gpu-prefix.sh: GPU
# test, shared-prefix workload on lessons 12 and 13, throughput on 13, the bars), with the time split
# between them. Everything lands in $OUT (sampling.tar.gz, prefix.tar.gz, summary.txt).
set -uo pipefail
OUT=${OUT:?set OUT}
T0=$SECONDS
DEADLINE_S=${SAMPLING_S:-270} bash engine-core/scripts/gpu-sampling.sh 2>&1 | tee "$OUT/summary.txt"
left=$(( ${DEADLINE_S:-560} - (SECONDS - T0) ))
echo "== lesson 13 with ${left} s left"
DEADLINE_S=$left BASE_THROUGHPUT=0 bash engine-core/scripts/gpu-prefix.sh 2>&1 | tee -a "$OUT/summary.txt"
