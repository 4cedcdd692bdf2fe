"""``sceneparser parse IMAGE... [--query Q ...|--scene] [--model PATH] [--out OUT.json|.jsonl]
[--viz OUT.png|DIR] [--device D] [--dtype T] [--batch-size B]``: a thin layer over ``SceneParser``."""

from __future__ import annotations

import argparse
import os
import json
import re
import sys
from pathlib import Path

from sceneparser.errors import InputError, SceneParserError
from sceneparser.hierarchy import Hierarchy
from sceneparser.inference.api import SceneParser
from sceneparser.viz import draw_hierarchy

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to parse")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--query",
        "-q",
        action="append",
        metavar="Q",
        help="object category to parse (repeat for several; all queries share each image's prefix)",
    )
    which.add_argument("--scene", action="store_true", help="parse every object in the image (scene prompt; the default)")
    parser.add_argument("--model", metavar="PATH", help="model directory or hub id (default: the shipped default model)")
    parser.add_argument("--backend", choices=("hf", "openai"), default="hf",
                        help="hf: load the model here (default); openai: ask a running OpenAI-compatible server "
                             "(vllm serve, SGLang, sceneparser serve; extra sceneparser[remote])")
    parser.add_argument("--base-url", metavar="URL", help="--backend openai: the server, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", metavar="KEY", help="--backend openai: API key (default: $SCENEPARSER_API_KEY)")
    parser.add_argument("--concurrency", type=int, default=8, help="--backend openai: requests in flight (default 8)")
    parser.add_argument("--min-pixels", type=int, default=None,
                        help="--backend openai: smart_resize lower bound the served model expects (default 12544)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="--backend openai: smart_resize upper bound the served model expects (default 2007040)")
    parser.add_argument("--min-score", type=float, default=None, metavar="S",
                        help="drop objects, parts and affordances whose confidence score is below S (0..1)")
    parser.add_argument("--out", metavar="OUT.json|OUT.jsonl", help="write results: .jsonl one per line, .json a list")
    parser.add_argument("--viz", metavar="OUT.png|DIR", help="draw results: a picture file (one image) or a directory")
    parser.add_argument("--device", metavar="D", help="cpu, cuda, cuda:N or mps (default: best available)")
    parser.add_argument("--dtype", metavar="T", help="float32, bfloat16 or float16 (default: bf16 on CUDA, else fp32)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="queries decoded together (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=2048, help="output token budget (default 2048)")
    parser.add_argument("--max-context", type=int, default=4096, help="prompt + output token limit (default 4096)")
    parser.add_argument("--repetition-penalty", type=float, default=1.05, help="default 1.05 (the reference)")
    parser.add_argument(
        "--no-degenerate-stop",
        action="store_true",
        help="do not stop at '<0><0><0><0>' (the reference stops there, which truncates the answer)",
    )
    parser.add_argument("--no-prefix-reuse", action="store_true", help="re-encode the image for every query")
    parser.add_argument("--layout", choices=("inference", "training"), default="inference", help="prompt layout")
    parser.add_argument(
        "--parse-mode", choices=("reference", "repair"), default="reference", help="output parser (default reference)"
    )
    parser.add_argument("--exif-transpose", action="store_true", help="apply EXIF orientation (the reference does not)")
    parser.add_argument(
        "--threads", type=int, metavar="N", default=None,
        help="torch CPU threads (0: torch's default, one per core). Default: 1 with the shipped default model, "
             "measured with benchmarks/bench_threads.py (scene prompt on examples/scene.jpg, 2 shared cores, "
             "median of 5 parses: 1 thread 0.6 s vs 2 threads 14 s beside other users' work, 1.4 s vs 45 s with "
             "every core busy; 2 threads won by 10%% only at the quietest moment): its layers are too small to "
             "share, and a thread waiting on a busy core stalls the others. With --model: one per core, as "
             "torch does (a large model gains from idle cores; pass --threads 1 on a busy machine)",
    )
    parser.add_argument("--tree", action="store_true", help="print each result as a tree instead of JSON")
    parser.add_argument("--raw", action="store_true", help="include the raw model text in printed JSON")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "image"


def _viz_targets(viz: str, names: list[str]) -> dict[str, Path]:
    target = Path(viz)
    if target.suffix.lower() in _IMAGE_SUFFIXES:
        if len(names) > 1:
            raise InputError(f"--viz {viz} is a single picture but {len(names)} images were given; pass a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        return {names[0]: target} if names else {}
    target.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    used: set[str] = set()
    for name in names:
        stem = _slug(Path(name).stem)
        cand, k = stem, 1
        while cand in used:
            k += 1
            cand = f"{stem}_{k}"
        used.add(cand)
        out[name] = target / f"{cand}.png"
    return out


def _threads(args: argparse.Namespace) -> int | None:
    """The torch thread count to set (None: leave torch's default); see the --threads help."""
    if args.threads is not None:
        if args.threads < 0:
            raise InputError("--threads must be >= 0 (0: torch's default)")
        return args.threads or None
    return 1 if args.model is None else None


def run(args: argparse.Namespace) -> int:
    threads = _threads(args)
    if threads and args.backend == "hf":  # the openai backend runs no model here (and may lack torch)
        import torch

        torch.set_num_threads(threads)
    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if args.out and Path(args.out).suffix.lower() not in (".json", ".jsonl"):
        raise InputError("--out must end in .json or .jsonl")
    generation = {
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "max_context": args.max_context,
        "repetition_penalty": args.repetition_penalty,
        "prefix_reuse": not args.no_prefix_reuse,
        "layout": args.layout,
    }
    if args.no_degenerate_stop:
        generation["stop_strings"] = ()
    if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
        raise InputError("--min-score must be between 0 and 1")
    if args.backend == "openai":
        if not args.base_url:
            raise InputError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        parser = SceneParser.from_server(
            args.base_url,
            model=args.model,
            api_key=args.api_key or os.environ.get("SCENEPARSER_API_KEY"),
            concurrency=args.concurrency,
            min_pixels=args.min_pixels,
            max_pixels=args.max_pixels,
            max_new_tokens=args.max_new_tokens,
            parse_mode=args.parse_mode,
            exif_transpose=args.exif_transpose,
            min_score=args.min_score,
        )
    else:
        parser = SceneParser.from_pretrained(
            args.model,
            device=args.device,
            dtype=args.dtype,
            parse_mode=args.parse_mode,
            exif_transpose=args.exif_transpose,
            min_score=args.min_score,
            **generation,
        )
    items, names, images, failures = [], [], {}, 0
    for path in args.images:
        try:
            img = parser.open_image(path)
        except SceneParserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        images[path] = img
        names.append(path)
        query = None if (args.scene or not args.query) else list(args.query)
        items.append({"image": img, "query": query, "name": path})
    viz_targets = _viz_targets(args.viz, names) if args.viz else {}
    results = parser.parse_many(items, progress=len(items) > 1)

    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as fh:
            if out.suffix.lower() == ".jsonl":
                for r in results:
                    fh.write(r.to_json() + "\n")
            else:
                json.dump([r.to_dict() for r in results], fh, ensure_ascii=False, indent=2)
                fh.write("\n")
    for r in results:
        if args.tree or args.out:
            title = f"{r.image}: {'scene' if r.scene else r.query} [{r.status}]"
            print(title)
            print("\n".join(r.tree().splitlines()[1:]))
        else:
            print(r.to_json(raw=args.raw))
    for name, target in viz_targets.items():
        mine = [r for r in results if r.image == name]
        merged = Hierarchy(objects=[o for r in mine for o in r.hierarchy.objects])
        draw_hierarchy(images[name], merged).save(target)
        print(f"wrote {target}", file=sys.stderr)
    if args.out:
        print(f"wrote {len(results)} results to {args.out}", file=sys.stderr)
    return 2 if failures else 0
