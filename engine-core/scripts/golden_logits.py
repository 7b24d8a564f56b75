"""Golden logits from Hugging Face transformers, the oracle for our Qwen3 forward.

    python3 engine-core/scripts/golden_logits.py MODEL_DIR OUT.json [--dtype float32|bfloat16] [--device cpu|cuda] [--short-only]

Loads a model folder (one our generator wrote, or a real checkpoint) with
AutoModelForCausalLM, tokenizes a few fixed prompts with the folder's own tokenizer,
and writes, for every prompt position: the logits at a fixed sample of vocabulary ids,
the full row's argmax and L2 norm. The sample keeps the fixture small enough to commit
while still covering the whole vocabulary at random; argmax and norm cover the full row.
Two long prompts (a paragraph repeated to about 600 tokens, and 2,000 random token ids)
check RoPE far from position 0; for them only every LONG_STRIDE-th position and the last
few are written ("positions"), so the fixture stays small.
PyTorch and transformers are test oracles only: the course never imports them.
"""
import argparse
import hashlib
import json
import os
import random

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    return",
    "你好，世界！今天天气",
    "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
]
SAMPLE_SIZE = 512
LONG_STRIDE = 50
PARAGRAPH = (
    "An inference engine is an operating system for a model: a scheduler decides which "
    "requests run, a block manager hands out the memory of the key-value cache in pages, "
    "and kernels are the drivers that move the bytes. "
)


def long_prompts(tok):
    """(text or None, ids) pairs: a paragraph repeated to >= 600 tokens, and 2,000 random ids (seed 0)."""
    para = tok(PARAGRAPH, add_special_tokens=False)["input_ids"]
    text = PARAGRAPH * (600 // len(para) + 1)
    rng = random.Random(0)
    return [(text, tok(text, add_special_tokens=False)["input_ids"]), (None, [rng.randint(0, 10000) for _ in range(2000)])]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--short-only", action="store_true", help="only the four short prompts")
    args = ap.parse_args()

    # A float32 oracle must be float32 all the way: no TF32 in its matmuls.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dtype = getattr(torch, args.dtype)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype, attn_implementation="eager").to(args.device).eval()
    vocab = model.config.vocab_size
    sample = sorted(random.Random(1234).sample(range(vocab), SAMPLE_SIZE))

    cases = [(text, tok(text, add_special_tokens=False)["input_ids"], None) for text in PROMPTS]
    if not args.short_only:
        for text, ids in long_prompts(tok):
            cases.append((text, ids, sorted(set(range(0, len(ids), LONG_STRIDE)) | set(range(len(ids) - 4, len(ids))))))
    prompts = []
    with torch.no_grad():
        for text, ids, positions in cases:
            logits = model(torch.tensor([ids], device=args.device)).logits[0].float()
            rows = logits if positions is None else logits[positions]
            entry = {
                "text": text,
                "ids": ids,
                "sampledLogits": [[round(v, 7) for v in row] for row in rows[:, sample].cpu().tolist()],
                "argmax": rows.argmax(dim=-1).cpu().tolist(),
                "rowNorm": [round(v, 6) for v in rows.norm(dim=-1).cpu().tolist()],
            }
            if positions is not None:
                entry["positions"] = positions
            prompts.append(entry)

    weights = os.path.join(args.model_dir, "model.safetensors")
    out = {
        "oracle": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "dtype": args.dtype,
        "model": os.path.basename(os.path.normpath(args.model_dir)),
        "weightsSha256": sha256(weights) if os.path.exists(weights) else None,
        "vocabSample": sample,
        "prompts": prompts,
    }
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"wrote {args.out}: {len(prompts)} prompts, {sum(len(p.get('positions', p['ids'])) for p in prompts)} positions (up to {max(len(p['ids']) for p in prompts) - 1}), dtype {args.dtype}")


if __name__ == "__main__":
    main()
