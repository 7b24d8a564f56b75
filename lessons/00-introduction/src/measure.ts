// The three numbers that bound everything later in the course, measured
// through our own addon: how fast the device copies memory, how fast it
// multiplies matrices, and what one op costs to launch from JavaScript.
import { DeviceTimer, Tensor, deviceIndex, native, ops, synchronize, type DType, type Device } from '@aios/engine-core';
import { mulberry32 } from '@aios/engine-core/random.ts';

export interface Timing {
  medianMs: number;
  minMs: number;
  iters: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Times `fn` `iters` times after `warmup` calls: CUDA events around each call
 * on a GPU (device time, launch gaps excluded), the host clock on the CPU.
 */
export function timeIt(device: Device, fn: () => void, iters: number, warmup = 3): Timing {
  for (let i = 0; i < warmup; i++) fn();
  synchronize(device);
  const times: number[] = [];
  const timer = device === 'cpu' ? undefined : new DeviceTimer(device);
  for (let i = 0; i < iters; i++) {
    if (timer) {
      timer.start();
      fn();
      times.push(timer.stopMs());
    } else {
      const t0 = performance.now();
      fn();
      times.push(performance.now() - t0);
    }
  }
  return { medianMs: median(times), minMs: Math.min(...times), iters };
}

/** Uniform random values in [-1, 1): never time on zeros (they can run faster than real data). */
export function randomTensor(shape: number[], dtype: DType, device: Device, seed = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  const random = mulberry32(seed);
  for (let i = 0; i < n; i++) data[i] = random() * 2 - 1;
  return Tensor.fromArray(data, shape, { dtype, device });
}

export interface CopyResult extends Timing {
  bytes: number;
  /** Bytes read plus bytes written per second, in GB/s (1e9). */
  gbPerS: number;
}

/** A device-to-device copy of `bytes` bytes (one DMA copy on a GPU, memcpy on the CPU). */
export function measureCopy(device: Device, bytes: number, iters: number): CopyResult {
  const n = Math.floor(bytes / 4);
  const src = randomTensor([n], 'f32', device, 7);
  const dst = Tensor.empty([n], { dtype: 'f32', device });
  try {
    const t = timeIt(device, () => ops.copy(src, dst), iters);
    return { ...t, bytes: n * 4, gbPerS: (2 * n * 4) / (t.medianMs * 1e-3) / 1e9 };
  } finally {
    src.dispose();
    dst.dispose();
  }
}

export interface GemmResult extends Timing {
  M: number;
  N: number;
  K: number;
  dtype: DType;
  tflops: number;
}

/** out[M, N] = x[M, K] @ w[N, K]^T through ops.matmul (cuBLASLt on a GPU): 2*M*N*K FLOPs. */
export function measureGemm(device: Device, M: number, N: number, K: number, dtype: DType, iters: number): GemmResult {
  const x = randomTensor([M, K], dtype, device, 3);
  const w = randomTensor([N, K], dtype, device, 4);
  const out = Tensor.empty([M, N], { dtype, device });
  try {
    const t = timeIt(device, () => ops.matmul(x, w, out), iters);
    return { ...t, M, N, K, dtype, tflops: (2 * M * N * K) / (t.medianMs * 1e-3) / 1e12 };
  } finally {
    x.dispose();
    w.dispose();
    out.dispose();
  }
}

export interface OverheadResult {
  calls: number;
  /** Host microseconds per ops.add call on 1-element tensors, through the TypeScript facade. */
  facadeUs: number;
  /** The same through the raw binding, with no TypeScript checks. */
  bindingUs: number;
  /**
   * Stream microseconds per tiny op launched back to back (GPU only): the
   * larger of the launch rate and the kernel's own time.
   */
  deviceUs?: number;
  /** Host microseconds per empty-kernel launch from C++ (GPU only): the floor under every op. */
  cudaLaunchUs?: number;
}

/**
 * What one tiny op costs from JavaScript: argument checks, the N-API call and
 * the kernel launch. Rounds of `calls` stay under the GPU's launch-queue depth,
 * so the host never waits on the device inside a round.
 */
export function measureOpOverhead(device: Device, calls = 1000, rounds = 7): OverheadResult {
  const a = Tensor.fromArray([1], [1], { dtype: 'f32', device });
  const b = Tensor.fromArray([2], [1], { dtype: 'f32', device });
  const out = Tensor.empty([1], { dtype: 'f32', device });
  const hostRound = (fn: () => void): number => {
    const perCall: number[] = [];
    for (let r = 0; r < rounds; r++) {
      synchronize(device);
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) fn();
      perCall.push(((performance.now() - t0) * 1e3) / calls);
      synchronize(device);
    }
    return median(perCall);
  };
  try {
    const facade = () => ops.add(a, b, out);
    const raw = () => native.add(2, 1, a.storage, 0, b.storage, 0, out.storage, 0);
    for (let i = 0; i < 2000; i++) facade(); // let the JIT settle
    const facadeUs = hostRound(facade);
    const bindingUs = hostRound(raw);
    if (device === 'cpu') return { calls, facadeUs, bindingUs };
    const t = timeIt(device, () => { for (let i = 0; i < calls; i++) raw(); }, rounds, 1);
    const index = deviceIndex(device);
    const launches = Array.from({ length: rounds }, () => native.launchOverheadUs(index, calls));
    return { calls, facadeUs, bindingUs, deviceUs: (t.medianMs * 1e3) / calls, cudaLaunchUs: median(launches) };
  } finally {
    a.dispose();
    b.dispose();
    out.dispose();
  }
}
