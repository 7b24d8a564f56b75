// Lesson 00: what machine is this, and what are its limits? Prints the
// backend and the device, then measures copy bandwidth, the bf16 GEMM rate and
// the per-op launch overhead through the addon. On a GPU the results are
// recorded under bench-results/ (lesson 00's environment record).
//
//   pnpm lesson 0 [--quick] [--record | --no-record] [--baseline torch.json] [--device cpu|cuda]
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';

import { defaultDevice, deviceIndex, native, parseDevice } from '@aios/engine-core';
import { currentCommit, hardwareInfo, writeRecord, type RecordBase } from '@aios/engine-core/bench/records.ts';
import { DEVICE_FLAG, type FlagValues, RECORD_FLAGS, UsageError, chooseRecord, deviceFlag, runCli } from '@aios/engine-core/cli/args.ts';

import { measureCopy, measureGemm, measureOpOverhead, type CopyResult, type GemmResult, type OverheadResult } from './measure.ts';

const FLAGS = {
  quick: { type: 'boolean', help: 'smaller sizes and fewer iterations (seconds instead of a minute on a GPU)' },
  ...RECORD_FLAGS,
  baseline: { type: 'string', value: 'FILE', help: "PyTorch's numbers from scripts/torch_baseline.py, put beside ours" },
  ...DEVICE_FLAG,
} as const;

/** What PyTorch (cuBLAS) measured on the same card in the same session: scripts/torch_baseline.py writes it. */
interface Baseline {
  torch: string;
  card: string;
  gemm: { M: number; N: number; K: number; tflops: number; medianMs: number };
  copy: { bytes: number; gbPerS: number };
  addOverheadUs?: number;
}

export interface EnvironmentRecord extends RecordBase {
  kind: 'environment';
  results: {
    copy: CopyResult;
    gemm: GemmResult;
    overhead: OverheadResult;
    baseline?: Baseline & { gemmRatio: number; copyRatio: number };
  };
}

function main(args: FlagValues<typeof FLAGS>): void {
  if (args.baseline !== undefined && !existsSync(args.baseline)) throw new UsageError(`--baseline: no file ${args.baseline}`);
  const device = deviceFlag(args.device, parseDevice) ?? defaultDevice();
  const info = native.backendInfo();
  const gpu = device !== 'cpu';

  console.log('AIOS-TS lesson 00: your machine\n');
  console.log(`native addon   ${native.path}`);
  console.log(`CUDA compiled  ${info.cudaCompiled ? `yes (arch ${info.cudaArchitectures}, cuBLAS ${info.cublas ? 'yes' : 'no'})` : 'no'}`);
  console.log(`backend        ${gpu ? 'cuda' : 'cpu'} (device ${device}${process.env.AIOS_DEVICE ? ', from AIOS_DEVICE' : ''})`);
  const hw = hardwareInfo(device);
  if (gpu) {
    const d = native.deviceInfo(deviceIndex(device));
    console.log(`GPU            ${d.name}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB (${(d.freeMemory / 2 ** 30).toFixed(1)} free), compute capability ${d.computeCapability}, ${d.smCount} SMs, L2 ${(d.l2Bytes / 2 ** 20).toFixed(0)} MiB`);
    console.log(`driver/runtime CUDA ${hw.driverVersion} / ${hw.cudaRuntime}, ${info.deviceCount} GPU(s)`);
  } else {
    console.log(`CPU            ${hw.card}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM`);
    if (info.cudaCompiled && !info.cudaUsable) console.log(`               (CUDA code is compiled in, but ${info.cublas ? 'no GPU is visible' : 'cuBLAS was missing at build time'})`);
  }

  // Sizes: large enough to fill the device and to exceed its caches; small on the CPU.
  const quick = args.quick ?? false;
  const copyBytes = gpu ? (quick ? 256 : 1024) * 2 ** 20 : (quick ? 16 : 64) * 2 ** 20;
  const gemmSize = gpu ? (quick ? 4096 : 8192) : quick ? 128 : 384;
  const iters = gpu ? (quick ? 10 : 30) : 3;

  console.log('\nmeasuring...');
  const copy = measureCopy(device, copyBytes, iters);
  console.log(`copy       ${(copy.bytes / 2 ** 20).toFixed(0)} MiB ${gpu ? 'device-to-device' : 'within host memory'}: ${copy.medianMs.toFixed(3)} ms median -> ${copy.gbPerS.toFixed(0)} GB/s (read + write)`);
  const gemm = measureGemm(device, gemmSize, gemmSize, gemmSize, 'bf16', iters);
  console.log(`gemm       bf16 ${gemmSize}^3: ${gemm.medianMs.toFixed(3)} ms median -> ${gemm.tflops.toFixed(gpu ? 0 : 3)} TFLOP/s`);
  const overhead = measureOpOverhead(device, quick ? 200 : 1000);
  console.log(`per op     tiny add from JS: ${overhead.facadeUs.toFixed(2)} us through ops (facade), ${overhead.bindingUs.toFixed(2)} us through the raw binding${overhead.deviceUs !== undefined ? `, ${overhead.deviceUs.toFixed(2)} us of stream time each back to back` : ''}`);
  if (overhead.cudaLaunchUs !== undefined) console.log(`           an empty kernel launched from C++: ${overhead.cudaLaunchUs.toFixed(2)} us (the floor under every op)`);

  // The roofline: below this many FLOPs per byte moved, a kernel is limited by memory, above it by math.
  const ridge = (gemm.tflops * 1e12) / (copy.gbPerS * 1e9);
  console.log(`\nroofline   ridge point ${ridge.toFixed(0)} FLOP/byte: a kernel doing fewer FLOPs per byte it moves is memory-bound here.`);
  console.log(`           A decode step reads every weight once (2 bytes in bf16) for 2 FLOPs per weight per sequence: 1 FLOP/byte at batch 1.`);

  let baseline: EnvironmentRecord['results']['baseline'];
  if (args.baseline) {
    const b = JSON.parse(readFileSync(args.baseline, 'utf8')) as Baseline;
    baseline = { ...b, gemmRatio: gemm.tflops / b.gemm.tflops, copyRatio: copy.gbPerS / b.copy.gbPerS };
    console.log(`\nbaseline   PyTorch ${b.torch} on ${b.card}: gemm ${b.gemm.tflops.toFixed(0)} TFLOP/s, copy ${b.copy.gbPerS.toFixed(0)} GB/s${b.addOverheadUs !== undefined ? `, tiny add ${b.addOverheadUs.toFixed(2)} us/call` : ''}`);
    console.log(`           ours / theirs: gemm ${(100 * baseline.gemmRatio).toFixed(1)}%, copy ${(100 * baseline.copyRatio).toFixed(1)}%`);
  }

  const record = chooseRecord(device, args);
  if (record) {
    const rec: EnvironmentRecord = {
      schema: 1,
      kind: 'environment',
      lesson: 0,
      date: new Date().toISOString(),
      commit: currentCommit(),
      hardware: hw,
      settings: { device, copyBytes, gemmSize, iters, quick, timing: gpu ? 'CUDA events, median' : 'host clock, median' },
      results: { copy, gemm, overhead, ...(baseline ? { baseline } : {}) },
    };
    console.log(`\nrecorded   ${writeRecord(rec)}`);
  } else {
    console.log('\n(not recorded: pass --record to write bench-results/)');
  }
}

void runCli({ command: 'pnpm lesson 0', summary: 'Lesson 00: your machine: backend, device, copy bandwidth, GEMM rate and per-op overhead through the addon.', flags: FLAGS }, main);
