"""PyTorch's scaled_dot_product_attention (flash backend) on the shapes of `pnpm bench:kernels`,
measured on the same card in the same call, for the kernel record's peer column.

Runs only on the GPU host, as an oracle (PyTorch is not a dependency of the course):
    tsx engine-core/src/cli/bench-kernels.ts --shapes-json shapes.json
    python3 engine-core/scripts/sdpa_peer.py shapes.json sdpa.json
    tsx engine-core/src/cli/bench-kernels.ts --peer sdpa.json

Timed the way the TypeScript side times our kernels: CUDA events around N back-to-back calls (a
repeat of about 2 ms), warm-up first, median of the repeats; decode inputs rotate over several K/V
sets when one set would sit in the 60 MB L2. Counted the same way too: prefill FLOPs = 4 x sum over
queries of visible keys x head_dim x q_heads, decode bytes = the visible keys' K and V rows of the
KV heads (so a backend that expands K/V to the query heads reads more than it is credited with).
Prefill is causal (Lq = Lk); decode is one query attending to the whole context (is_causal=False).
GQA goes through enable_gqa=True when the flash backend takes it, else K/V are expanded to the
query heads outside the timed region; the record says which.
"""
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

DEV = torch.device("cuda")
DTYPE = torch.bfloat16
BUDGET_MS = 600.0


def time_calls(fn, budget_ms=BUDGET_MS):
    """Device ms per call of fn(i): events around N calls, median of repeats (two passes when cheap)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    i = 0
    fn(i)
    torch.cuda.synchronize()
    start.record()
    fn(i + 1)
    end.record()
    end.synchronize()
    i += 2
    first = start.elapsed_time(end)
    calls = max(1, min(64, round(2.0 / max(first, 1e-3))))
    per_repeat = calls * first
    passes = 1 if per_repeat > 50 else 2
    repeats = 2 if per_repeat > 500 else max(3, min(15, int(budget_ms / passes / per_repeat)))
    times, pass_medians = [], []
    for _ in range(passes):
        for _ in range(0 if per_repeat > 50 else 2):
            for _ in range(calls):
                fn(i)
                i += 1
        ts = []
        for _ in range(repeats):
            start.record()
            for _ in range(calls):
                fn(i)
                i += 1
            end.record()
            end.synchronize()
            ts.append(start.elapsed_time(end) / calls)
        pass_medians.append(statistics.median(ts))
        times += ts
    return {
        "medianMs": statistics.median(times),
        "minMs": min(times),
        "maxMs": max(times),
        "repeats": len(times),
        "callsPerRepeat": calls,
        "passMedians": pass_medians,
    }


def rand(*shape):
    return torch.rand(*shape, device=DEV, dtype=torch.float32).mul_(2).sub_(1).to(DTYPE)


def sdpa(q, k, v, causal, gqa):
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        if gqa:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def prepare(s, sets):
    """`sets` input sets in the [batch, heads, len, dim] views models pass (made from [batch, len, heads, dim])."""
    B, Lq, Lk, Hq, Hkv, D = s["seqs"], s["qLen"], s["context"], s["qHeads"], s["kvHeads"], s["headDim"]
    q = rand(B, Lq, Hq, D).transpose(1, 2)
    kvs = [(rand(B, Lk, Hkv, D).transpose(1, 2), rand(B, Lk, Hkv, D).transpose(1, 2)) for _ in range(sets)]
    return q, kvs


def run_shape(s):
    causal = s["phase"] == "prefill"
    sets = 1 if causal else max(1, min(32, math.ceil((256 << 20) / s["kvBytes"])))
    q, kvs = prepare(s, sets)
    group = s["qHeads"] // s["kvHeads"]
    how = "enable_gqa=True"
    try:
        sdpa(q, kvs[0][0], kvs[0][1], causal, True)
        torch.cuda.synchronize()
        gqa = True
    except RuntimeError as e:  # this backend takes no enable_gqa: expand K/V outside the timed region
        how = f"K/V expanded to {s['qHeads']} heads (enable_gqa refused: {(str(e).splitlines() or [''])[0][:120]})"
        kvs = [(k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)) for k, v in kvs]
        gqa = False
    t = time_calls(lambda i: sdpa(q, kvs[i % sets][0], kvs[i % sets][1], causal, gqa))
    out = {"version": "torch-sdpa-flash", **{k: t[k] for k in ("medianMs", "minMs", "maxMs", "repeats", "callsPerRepeat")}}
    note = [how, f"pass medians {' / '.join(f'{m:.4f}' for m in t['passMedians'])} ms"]
    if sets > 1:
        note.append(f"{sets} K/V sets rotated")
    out["note"] = "; ".join(note)
    if causal:
        out["tflops"] = s["flops"] / (t["medianMs"] * 1e-3) / 1e12
    else:
        out["gbPerS"] = s["kvBytes"] / (t["medianMs"] * 1e-3) / 1e9
    del q, kvs
    torch.cuda.empty_cache()
    return out


def copy_gbps():
    n = 1 << 28
    src = torch.rand(n, device=DEV)
    dst = torch.empty_like(src)
    t = time_calls(lambda i: dst.copy_(src), 300)
    return {"bytes": 4 * n, "medianMs": t["medianMs"], "gbPerS": 2 * 4 * n / (t["medianMs"] * 1e-3) / 1e9}


def main(shapes_path, out_path):
    spec = json.load(open(shapes_path))
    result = {
        "torch": torch.__version__,
        "card": torch.cuda.get_device_name(0),
        "note": "F.scaled_dot_product_attention under sdpa_kernel(SDPBackend.FLASH_ATTENTION), bf16",
        "copy": copy_gbps(),
        "shapes": {},
    }
    print(f"sdpa_peer: torch {torch.__version__} on {result['card']}; copy {result['copy']['gbPerS']:.0f} GB/s", flush=True)
    for s in spec["shapes"]:
        try:
            r = run_shape(s)
            rate = f"{r['tflops']:.1f} TFLOP/s" if "tflops" in r else f"{r['gbPerS']:.0f} GB/s"
            print(f"{s['name']:<30} torch-sdpa-flash {r['medianMs']:.4f} ms  {rate}  ({r['note']})", flush=True)
        except Exception as e:  # keep going: one shape's failure is recorded, not fatal
            r = {"version": "torch-sdpa-flash", "medianMs": None, "minMs": None, "maxMs": None, "repeats": 0,
                 "callsPerRepeat": 0, "error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"}
            print(f"{s['name']:<30} torch-sdpa-flash ERROR {r['error']}", flush=True)
            torch.cuda.empty_cache()
        result["shapes"][s["name"]] = r
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 engine-core/scripts/sdpa_peer.py SHAPES.json OUT.json")
    main(sys.argv[1], sys.argv[2])
