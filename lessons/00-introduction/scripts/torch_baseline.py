"""What PyTorch gets on this GPU, for lesson 00 to compare against in the same session.

Runs only as an oracle on the GPU host (PyTorch is not a dependency of the course):
    python3 lessons/00-introduction/scripts/torch_baseline.py OUT.json
Measures the same three things lesson 00 does, the same way: a bf16 8192^3 matmul
(cuBLAS through torch.matmul) and a 1 GiB device-to-device copy, each timed with CUDA
events, median of 30 after warm-up, on random data; and the host cost of a tiny add.
"""
import json
import statistics
import sys
import time

import torch


def time_ms(fn, iters=30, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main(out_path):
    dev = torch.device("cuda")
    n = 8192
    x = torch.rand(n, n, device=dev, dtype=torch.bfloat16) * 2 - 1
    w = torch.rand(n, n, device=dev, dtype=torch.bfloat16) * 2 - 1
    out = torch.empty(n, n, device=dev, dtype=torch.bfloat16)
    gemm_ms = time_ms(lambda: torch.matmul(x, w.t(), out=out))
    nbytes = 1 << 30
    src = torch.rand(nbytes // 4, device=dev)
    dst = torch.empty_like(src)
    copy_ms = time_ms(lambda: dst.copy_(src))
    a, b, c = (torch.ones(1, device=dev) for _ in range(3))
    for _ in range(2000):
        torch.add(a, b, out=c)
    per_call = []
    for _ in range(7):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(1000):
            torch.add(a, b, out=c)
        per_call.append((time.perf_counter() - t0) * 1e6 / 1000)
        torch.cuda.synchronize()
    result = {
        "torch": torch.__version__,
        "card": torch.cuda.get_device_name(0),
        "gemm": {"M": n, "N": n, "K": n, "medianMs": gemm_ms, "tflops": 2 * n**3 / (gemm_ms * 1e-3) / 1e12},
        "copy": {"bytes": nbytes, "medianMs": copy_ms, "gbPerS": 2 * nbytes / (copy_ms * 1e-3) / 1e9},
        "addOverheadUs": statistics.median(per_call),
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "torch_baseline.json")
