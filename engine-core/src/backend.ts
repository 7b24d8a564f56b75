// Loads the native addon and decides where tensors live by default:
// the CUDA device when the addon was built with CUDA and a GPU is present,
// else the CPU. AIOS_DEVICE=cpu|cuda|cuda:N overrides.
import { createRequire } from 'node:module';

import type * as Native from '@aios/native';

export type NativeAddon = typeof Native;
export type Device = 'cpu' | `cuda:${number}`;

const require = createRequire(import.meta.url);
export const native: NativeAddon = require('@aios/native');

export function cudaAvailable(): boolean {
  return native.backendInfo().cudaUsable;
}

/** The addon's device number: -1 for the host, N for cuda:N. */
export function deviceIndex(device: Device): number {
  if (device === 'cpu') return -1;
  return Number(device.slice(5));
}

export function deviceFromIndex(index: number): Device {
  return index < 0 ? 'cpu' : `cuda:${index}`;
}

/** Parses and checks a device name; asking for CUDA where there is none is an error that says why. */
export function parseDevice(name: string): Device {
  const m = /^(cpu|cuda)(?::(\d+))?$/.exec(name.trim());
  if (!m) throw new Error(`unknown device "${name}" (expected cpu, cuda or cuda:N)`);
  if (m[1] === 'cpu') return 'cpu';
  const index = m[2] === undefined ? 0 : Number(m[2]);
  const info = native.backendInfo();
  if (!info.cudaUsable) {
    const why = !info.cudaCompiled
      ? 'the native addon was built without CUDA (no nvcc found at build time; see docs/gpu-setup.md)'
      : !info.cublas
        ? 'the native addon was built without cuBLAS (install the CUDA toolkit with cuBLAS and rebuild)'
        : 'no CUDA device is visible (nvidia-smi shows none, or the driver is missing)';
    throw new Error(`device "${name}" requested but CUDA is not usable: ${why}`);
  }
  if (index >= info.deviceCount) throw new Error(`device "${name}" requested but only ${info.deviceCount} CUDA device(s) exist`);
  return `cuda:${index}`;
}

let cachedDefault: Device | undefined;

/** The device tensors go to when none is named. */
export function defaultDevice(): Device {
  if (cachedDefault) return cachedDefault;
  const env = process.env.AIOS_DEVICE;
  cachedDefault = env ? parseDevice(env) : cudaAvailable() ? 'cuda:0' : 'cpu';
  return cachedDefault;
}

export function synchronize(device: Device = defaultDevice()): void {
  native.synchronize(deviceIndex(device));
}

/** Waits for the device's stream on a worker thread, leaving the event loop free. */
export function synchronizeAsync(device: Device = defaultDevice()): Promise<void> {
  return native.synchronizeAsync(deviceIndex(device));
}

export function allocatorStats(device: Device = defaultDevice()): Native.AllocatorStats {
  return native.allocatorStats(deviceIndex(device));
}

export function emptyCache(device: Device = defaultDevice()): void {
  native.emptyCache(deviceIndex(device));
}

export function resetPeakStats(device: Device = defaultDevice()): void {
  native.resetPeakStats(deviceIndex(device));
}

/** The device's one stream (cudaStream_t as a BigInt), for interop such as NCCL; 0n on the host. */
export function stream(device: Device = defaultDevice()): bigint {
  return native.streamHandle(deviceIndex(device));
}

export function deviceInfo(device: Device): Native.DeviceInfo {
  if (device === 'cpu') throw new Error('deviceInfo: cpu is not a CUDA device');
  return native.deviceInfo(deviceIndex(device));
}

/** Device time between two points on the stream, measured with CUDA events. */
export class DeviceTimer {
  private readonly startEvent: Native.Event;
  private readonly endEvent: Native.Event;
  constructor(readonly device: Device) {
    if (device === 'cpu') throw new Error('DeviceTimer: use a host clock on the CPU backend');
    this.startEvent = new native.Event(deviceIndex(device));
    this.endEvent = new native.Event(deviceIndex(device));
  }
  start(): void {
    this.startEvent.record();
  }
  /** Records the end point, waits for it and returns the milliseconds between. */
  stopMs(): number {
    this.endEvent.record();
    return this.startEvent.elapsedMs(this.endEvent);
  }
}

/**
 * Records what `record` queues on the device's stream into an executable CUDA
 * graph instead of running it (lesson 11). Whatever `record` does must neither
 * synchronize nor allocate device memory: CUDA refuses both during a capture,
 * and the capture is then ended and the error rethrown.
 */
export function captureGraph(device: Device, record: () => void): Native.Graph {
  if (device === 'cpu') throw new Error('captureGraph: CUDA graphs need a CUDA device');
  const d = deviceIndex(device);
  native.graphBegin(d);
  try {
    record();
  } catch (e) {
    native.graphAbort(d);
    throw e;
  }
  try {
    return native.graphEnd(d);
  } catch (e) {
    native.graphAbort(d);
    throw e;
  }
}
