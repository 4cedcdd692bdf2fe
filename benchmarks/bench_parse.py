"""Throughput of the transformers backend: one query at a time vs batched vs batched + prefix reuse.

    python benchmarks/bench_parse.py                       # tiny random model, CPU, 20 images x 7 queries
    python benchmarks/bench_parse.py --images 5 --tokens 16 --batch-size 4
    python benchmarks/bench_parse.py --shape 3b --device cuda --dtype bfloat16   # on a GPU machine

Every query generates exactly ``--tokens`` tokens (``min_new_tokens = max_new_tokens``, stop
strings off), so the three modes do the same work and their outputs must be identical:

(a) one query at a time, re-encoding the image for every query (what the reference does);
(a') the same with ``model.generate`` (transformers' own loop), for comparison;
(b) batched (left padding), images re-encoded per query;
(c) batched with prefix reuse (system + image encoded once per image, KV cache shared).

Prints queries/s per mode, the speed-ups, and whether all outputs are identical; ``--json``
writes the numbers to a file.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time


def _build(args):
    import torch

    from sceneparser.model.tiny import build_tiny

    if args.shape == "tiny":
        model, processor = build_tiny(seed=0)
    else:  # Qwen2.5-VL-3B shape, random weights (docs/reference.md, *tokenizer*)
        from transformers import Qwen2_5_VLForConditionalGeneration

        from sceneparser.model.processor import ImageProcessor, SceneParserProcessor
        from sceneparser.model.tiny import tiny_config
        from sceneparser.model.tokenizer import build_small_tokenizer

        tok = build_small_tokenizer()
        config, _ = tiny_config(
            tok,
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            mrope_section=(16, 24, 24),
            vision_depth=32,
            vision_hidden_size=1280,
            vision_intermediate_size=3420,
            vision_num_heads=16,
            window_size=112,
            vocab_size=151936,
        )
        config.vision_config.fullatt_block_indexes = [7, 15, 23, 31]
        torch.manual_seed(0)
        dtype = getattr(torch, args.dtype or "bfloat16")
        with torch.device(args.device or "cpu"):
            model = Qwen2_5_VLForConditionalGeneration(config).to(dtype)
        model.eval()
        processor = SceneParserProcessor(ImageProcessor(), tok)
    if args.device:
        model.to(args.device)
    if args.dtype and args.shape == "tiny":
        model.to(getattr(torch, args.dtype))
    return model, processor


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--queries", type=int, default=7, help="queries per image")
    ap.add_argument("--tokens", type=int, default=32, help="generated tokens per query (fixed)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--image-size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    ap.add_argument("--shape", choices=("tiny", "3b"), default="tiny")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--skip-hf", action="store_true", help="skip the model.generate baseline (a')")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    from sceneparser import prompts
    from sceneparser.inference.transformers_backend import TransformersBackend
    from sceneparser.inference.types import GenerationRequest
    from sceneparser.model.processor import chat_pieces

    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor = _build(args)
    dev = next(model.parameters()).device
    rs = np.random.RandomState(0)
    w, h = args.image_size
    images = [Image.fromarray((rs.rand(h, w, 3) * 255).astype("uint8")) for _ in range(args.images)]
    cats = ["mug", "kettle", "cabinet door", "chair", "laptop", "bottle", "scissors", "drawer", "lamp", "sofa"]
    queries = [prompts.object_question(cats[i % len(cats)], prompts.OBJECT_PROMPTS_WHEN_AVAILABLE[i]) for i in range(args.queries)]
    requests = [GenerationRequest(im, q) for im in images for q in queries]
    n = len(requests)
    common = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens, stop_strings=())

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # warm-up (first-call overheads), not timed
    TransformersBackend(model, processor, batch_size=2, **common).generate(requests[:2])

    results, outputs = {}, {}
    modes = {
        "a_one_at_a_time": dict(batch_size=1, prefix_reuse=False),
        "b_batched": dict(batch_size=args.batch_size, prefix_reuse=False),
        "c_batched_prefix_reuse": dict(batch_size=args.batch_size, prefix_reuse=True),
    }
    for name, opts in modes.items():
        backend = TransformersBackend(model, processor, **common, **opts)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync()
        t = time.perf_counter()
        out = backend.generate(requests, progress=True)
        sync()
        dt = time.perf_counter() - t
        outputs[name] = [o.token_ids for o in out]
        results[name] = {"seconds": round(dt, 3), "queries_per_s": round(n / dt, 3)}
        if dev.type == "cuda":
            results[name]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(f"{name:28s} {dt:8.2f} s  {n / dt:8.2f} queries/s", file=sys.stderr)

    if not args.skip_hf:
        t = time.perf_counter()
        hf = []
        for r in requests:
            batch = processor([chat_pieces(r.question)], [r.image]).to(dev)
            batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
            with torch.inference_mode():
                g = model.generate(
                    **batch,
                    max_new_tokens=args.tokens,
                    min_new_tokens=args.tokens,
                    do_sample=False,
                    repetition_penalty=1.05,
                )
            hf.append(g[0, batch["input_ids"].shape[1] :].tolist())
        sync()
        dt = time.perf_counter() - t
        outputs["a_hf_generate"] = hf
        results["a_hf_generate"] = {"seconds": round(dt, 3), "queries_per_s": round(n / dt, 3)}
        print(f"{'a_hf_generate':28s} {dt:8.2f} s  {n / dt:8.2f} queries/s", file=sys.stderr)

    ref = outputs["a_one_at_a_time"]
    identical = {k: v == ref for k, v in outputs.items()}
    qa = results["a_one_at_a_time"]["queries_per_s"]
    summary = {
        "setup": {
            "shape": args.shape,
            "images": args.images,
            "queries_per_image": args.queries,
            "tokens_per_query": args.tokens,
            "batch_size": args.batch_size,
            "image_size": [w, h],
            "device": str(dev),
            "dtype": str(model.dtype),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "results": results,
        "speedup_b_over_a": round(results["b_batched"]["queries_per_s"] / qa, 2),
        "speedup_c_over_a": round(results["c_batched_prefix_reuse"]["queries_per_s"] / qa, 2),
        "speedup_c_over_b": round(
            results["c_batched_prefix_reuse"]["queries_per_s"] / results["b_batched"]["queries_per_s"], 2
        ),
        "identical_outputs": identical,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
    return 0 if all(identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
