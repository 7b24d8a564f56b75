"""Hugging Face transformers on one of our workloads, on the same card and model as our lessons,
written as a peer record (kind "peer", bench-results/ schema 1) that the chart draws as a reference
line. Runs only on the GPU host, as a measured peer (transformers is never part of the engine):

    tsx engine-core/scripts/dump-workload.ts course course.json
    python3 engine-core/scripts/hf_peer.py MODEL_DIR course.json OUT_DIR --mode generate --commit C
    python3 engine-core/scripts/hf_peer.py MODEL_DIR course.json OUT_DIR --mode generate_batch --commit C

Modes:
  generate        model.generate on static batches of --batch requests (default: all of them), left
                  padded, SDPA attention; every sequence of a batch runs to the batch's largest budget
                  (min_new_tokens = max_new_tokens: ignore_eos), and only each request's own budget is
                  counted as output, so the tokens a static batch wastes past a request's budget cost
                  time and count for nothing, as they would for a user.
  generate_batch  transformers' continuous batching (ContinuousBatchingManager, paged attention), each
                  request with its own max_new_tokens where the installed version takes one; otherwise
                  one max_new_tokens for all, counting each request's own budget as above (the record's
                  note says which).

Sampling as the workload asks (temperature; top-k/top-p off), EOS never stops a request. The time
is wall time from the first request in to the last token out (cuda synchronized), after one warm-up
call on a few short requests; the weights load before the clock starts.
"""
import argparse
import datetime
import inspect
import json
import os
import socket
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, GenerationConfig


def log(*a):
    print(*a, flush=True)


def load(model_dir, attn):
    # `dtype` replaced `torch_dtype` in newer versions; the older name still works there, with a warning.
    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn, **{key: torch.bfloat16})
    return model.to("cuda").eval()


def gen_config(max_new, temperature, pad_id):
    sample = temperature > 0
    return GenerationConfig(
        max_new_tokens=max_new,
        min_new_tokens=max_new,
        do_sample=sample,
        temperature=temperature if sample else None,
        top_k=0 if sample else None,
        top_p=1.0 if sample else None,
        eos_token_id=None,
        pad_token_id=pad_id,
    )


def run_generate(model, reqs, batch, pad_id):
    """Static batches, left padded: returns (useful output tokens, prompt tokens)."""
    out_tokens = 0
    for start in range(0, len(reqs), batch):
        group = reqs[start:start + batch]
        longest = max(len(r["promptIds"]) for r in group)
        ids = torch.full((len(group), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), longest), dtype=torch.long)
        for i, r in enumerate(group):
            n = len(r["promptIds"])
            ids[i, longest - n:] = torch.tensor(r["promptIds"])
            mask[i, longest - n:] = 1
        budget = max(r["maxTokens"] for r in group)
        with torch.inference_mode():
            out = model.generate(input_ids=ids.cuda(), attention_mask=mask.cuda(), generation_config=gen_config(budget, group[0]["temperature"], pad_id))
        generated = out.shape[1] - longest
        out_tokens += sum(min(r["maxTokens"], generated) for r in group)
        log(f"  batch {start // batch + 1}: {len(group)} requests, {generated} steps")
    torch.cuda.synchronize()
    return out_tokens


def run_generate_batch(model, reqs, pad_id):
    """Continuous batching: returns (useful output tokens, how per-request budgets were given)."""
    budget = max(r["maxTokens"] for r in reqs)
    gc = gen_config(budget, reqs[0]["temperature"], pad_id)
    init = getattr(model, "init_continuous_batching", None)
    if init is not None:
        mgr = init(generation_config=gc)
        add = mgr.add_request
        per_request = "max_new_tokens" in inspect.signature(add).parameters
        mgr.start()
        try:
            for i, r in enumerate(reqs):
                if per_request:
                    add(r["promptIds"], request_id=f"r{i}", max_new_tokens=r["maxTokens"])
                else:
                    add(r["promptIds"], request_id=f"r{i}")
            got = {}
            deadline = time.time() + 3600
            while len(got) < len(reqs) and time.time() < deadline:
                res = mgr.get_result(timeout=1)
                if res is None:
                    continue
                status = str(getattr(res, "status", "")).lower()
                if "finish" in status or getattr(res, "is_finished", lambda: False)():
                    got[res.request_id] = res
        finally:
            mgr.stop(block=True)
        torch.cuda.synchronize()
        tokens = sum(min(reqs[int(k[1:])]["maxTokens"], len(v.generated_tokens)) for k, v in got.items())
        how = "ContinuousBatchingManager, " + ("max_new_tokens per request" if per_request else f"max_new_tokens {budget} for all, each request's own budget counted")
        if len(got) < len(reqs):
            how += f"; only {len(got)} of {len(reqs)} requests came back"
        return tokens, how, len(got)
    out = model.generate_batch(inputs=[r["promptIds"] for r in reqs], generation_config=gc, progress_bar=False)
    torch.cuda.synchronize()
    tokens = sum(min(reqs[int(k.split("_")[-1]) if k.split("_")[-1].isdigit() else 0]["maxTokens"], len(v.generated_tokens)) for k, v in out.items())
    return tokens, f"generate_batch, max_new_tokens {budget} for all, each request's own budget counted", len(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("workload_json")
    ap.add_argument("out_dir")
    ap.add_argument("--mode", choices=["generate", "generate_batch"], required=True)
    ap.add_argument("--batch", type=int, default=0, help="generate: requests per static batch (0: all)")
    ap.add_argument("--commit", default=os.environ.get("AIOS_COMMIT", "unknown"))
    ap.add_argument("--model-name", default=None)
    args = ap.parse_args()

    w = json.load(open(args.workload_json))
    reqs = w["requests"]
    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    pad_id = cfg.get("pad_token_id") or 0
    # generate_batch needs a paged attention: transformers 5 names them "paged|<backend>".
    attn = "sdpa" if args.mode == "generate" else "paged|sdpa"
    log(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name(0)}; {args.mode} on {w['name']} ({len(reqs)} requests)")
    try:
        model = load(args.model_dir, attn)
    except Exception as e:  # older versions name the paged implementation differently
        if args.mode != "generate_batch":
            raise
        log(f"attn_implementation={attn} refused ({str(e)[:300]}); trying sdpa_paged (transformers 4.5x's name)")
        attn = "sdpa_paged"
        model = load(args.model_dir, attn)
    params = sum(p.numel() for p in model.parameters())

    warm = [dict(r, maxTokens=8) for r in reqs[:4]]
    log("warm-up")
    if args.mode == "generate":
        run_generate(model, warm, len(warm), pad_id)
    else:
        run_generate_batch(model, warm, pad_id)

    log("timed run")
    t0 = time.perf_counter()
    if args.mode == "generate":
        batch = args.batch or len(reqs)
        tokens = run_generate(model, reqs, batch, pad_id)
        how, finished = f"static batches of {batch}, left padded, min_new_tokens = the batch's largest budget; each request's own budget counted", len(reqs)
    else:
        tokens, how, finished = run_generate_batch(model, reqs, pad_id)
    seconds = time.perf_counter() - t0
    rate = tokens / seconds
    log(f"{tokens} output tokens in {seconds:.2f} s: {rate:.1f} tok/s ({how})")

    props = torch.cuda.get_device_properties(0)
    date = datetime.datetime.now(datetime.timezone.utc)
    record = {
        "schema": 1,
        "kind": "peer",
        "lesson": 11,
        "date": date.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "commit": args.commit,
        "hardware": {
            "backend": "cuda",
            "card": props.name,
            "gpuCount": torch.cuda.device_count(),
            "cudaRuntime": torch.version.cuda,
            "computeCapability": f"{props.major}.{props.minor}",
            "smCount": props.multi_processor_count,
            "memoryBytes": props.total_memory,
            "cpuCores": os.cpu_count(),
        },
        "settings": {"host": socket.gethostname(), "attnImplementation": attn, "torch": torch.__version__, "batch": args.batch or None},
        "peer": {"library": "transformers", "version": transformers.__version__, "mode": args.mode, "note": how},
        "workload": w["name"],
        "model": {"name": args.model_name or os.path.basename(os.path.normpath(args.model_dir)), "dtype": "bf16", "params": params, "randomWeights": True},
        "partial": finished < len(reqs),
        "results": {
            "requests": len(reqs),
            "finishedRequests": finished,
            "promptTokens": sum(len(r["promptIds"]) for r in reqs),
            "outputTokens": tokens,
            "seconds": seconds,
            "outputTokPerS": rate,
        },
    }
    os.makedirs(args.out_dir, exist_ok=True)
    stamp = record["date"].replace(":", "-").replace(".", "-")
    card = "".join(c if c.isalnum() else "-" for c in props.name.lower()).strip("-")
    while "--" in card:
        card = card.replace("--", "-")
    path = os.path.join(args.out_dir, f"{stamp}_lesson11_peer-transformers-{args.mode.replace('_', '-')}-{w['name']}_{card}.json")
    json.dump(record, open(path, "w"), indent=2)
    log(f"record: {path}")


if __name__ == "__main__":
    sys.exit(main())
