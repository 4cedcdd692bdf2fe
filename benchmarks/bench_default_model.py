"""CPU latency per object query and size of the shipped default model (issue 8).

    python benchmarks/bench_default_model.py                     # 2 threads, examples/scene.jpg
    python benchmarks/bench_default_model.py --threads 1 --repeats 10 --json /tmp/bench_default.json
    python benchmarks/bench_default_model.py --model /tmp/default_model_run/model/stage3

Measures, on the CPU with ``--threads`` torch threads (target: <= 0.5 s per object query on 2 cores):

* **single**: one object query per ``parse`` call (image encoded, answer decoded greedily to its
  end), the latency a user sees for ``sceneparser parse IMAGE --query Q``;
* **batched**: all queries of the image in one ``parse`` call (shared image prefix, batched
  decoding), reported per query;

plus the model's size: parameters, the safetensors file size, and the whole directory.
Not a test: speed depends on the machine; the numbers go in the model card.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO / "examples" / "scene.jpg"
DEFAULT_QUERIES = ("mug", "bottle", "pan", "lamp")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    ap.add_argument("--image", default=str(DEFAULT_IMAGE), help="image to parse (default examples/scene.jpg)")
    ap.add_argument("--query", action="append", default=None, help="object queries (default: mug, bottle, pan, lamp)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions per query (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up calls (default 1)")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from PIL import Image

    from sceneparser.inference.api import SceneParser
    from sceneparser.model.loading import resolve_model_path

    model_dir = resolve_model_path(args.model)
    t0 = time.perf_counter()
    parser = SceneParser.from_pretrained(args.model, device="cpu", dtype="float32")
    load_s = time.perf_counter() - t0
    image = Image.open(args.image).convert("RGB")
    queries = list(args.query or DEFAULT_QUERIES)

    for _ in range(args.warmup):
        parser.parse(image, query=queries[0])

    single: dict[str, list[float]] = {q: [] for q in queries}
    answer_tokens: dict[str, int] = {}
    for _ in range(args.repeats):
        for q in queries:
            t = time.perf_counter()
            result = parser.parse(image, query=q)
            single[q].append(time.perf_counter() - t)
            answer_tokens[q] = len(parser.backend.processor.tokenizer(result.raw_text, add_special_tokens=False)["input_ids"])
    batched = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        parser.parse(image, query=queries)
        batched.append((time.perf_counter() - t) / len(queries))

    all_single = [x for v in single.values() for x in v]
    model = parser.backend.model
    n_params = sum(p.numel() for p in model.parameters())
    st = model_dir / "model.safetensors"
    dir_bytes = sum(f.stat().st_size for f in model_dir.iterdir() if f.is_file())  # checkpoints excluded
    out = {
        "model_dir": str(model_dir),
        "threads": args.threads,
        "image": str(args.image),
        "image_size": list(image.size),
        "queries": queries,
        "repeats": args.repeats,
        "load_s": round(load_s, 3),
        "single_query_s_median": round(statistics.median(all_single), 4),
        "single_query_s_p90": round(sorted(all_single)[max(0, int(0.9 * len(all_single)) - 1)], 4),
        "single_query_s_by_query": {q: round(statistics.median(v), 4) for q, v in single.items()},
        "answer_tokens_by_query": answer_tokens,
        "batched_s_per_query_median": round(statistics.median(batched), 4),
        "target_s_per_query": 0.5,
        "meets_target": statistics.median(all_single) <= 0.5,
        "parameters": n_params,
        "safetensors_bytes": st.stat().st_size if st.is_file() else None,
        "model_dir_bytes": dir_bytes,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"default model: {n_params / 1e6:.2f} M parameters, safetensors {out['safetensors_bytes'] / 1e6:.1f} MB, "
          f"directory {dir_bytes / 1e6:.1f} MB (load {load_s:.2f} s)")
    print(f"CPU, {args.threads} threads, {image.size[0]}x{image.size[1]} image, {args.repeats} repeats")
    print(f"  one query per call : median {out['single_query_s_median']:.3f} s  p90 {out['single_query_s_p90']:.3f} s "
          f"(target <= 0.5 s: {'met' if out['meets_target'] else 'NOT met'})")
    for q in queries:
        print(f"    {q:<10} {out['single_query_s_by_query'][q]:.3f} s  ({answer_tokens[q]} answer tokens)")
    print(f"  {len(queries)} queries batched : {out['batched_s_per_query_median']:.3f} s per query")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
