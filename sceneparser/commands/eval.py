"""``sceneparser eval``: run a model on a benchmark JSONL and score it (resumable, sharded).

A thin layer over :func:`sceneparser.evaluation.runner.run_eval`; see that module for the flow.
"""

from __future__ import annotations

import argparse
import os
import sys

from sceneparser.errors import SceneParserError
from sceneparser.evaluation.report import build_report
from sceneparser.evaluation.runner import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    EvalConfig,
    format_summary,
    run_eval,
)
from sceneparser.model.loading import model_pixel_range, resolve_model_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="model directory (or hub id) to evaluate (default: the shipped default model)")
    p.add_argument("--data", required=True, help="benchmark val JSONL (one image per line)")
    p.add_argument("--out", required=True, help="output directory (answer.jsonl, eval_results_*.json, final_metrics.json)")
    p.add_argument("--image-root", default=None,
                   help="directory the records' image_path values are relative to (default: the current directory)")
    p.add_argument("--mask-root", default=None,
                   help="directory relative GT mask_path values are joined to (default: --image-root; "
                        "without either, the metric opens them relative to the current directory, as the reference)")
    p.add_argument("--level", choices=("object", "scene"), default="object",
                   help="object: one query per (image, category) as the published protocol; scene: one per image")
    p.add_argument("--batch-size", type=int, default=16, help="samples per generate call (default 16, the reference driver's)")
    p.add_argument("--max-new-tokens", type=int, default=2048, help="generation budget per answer (default 2048)")
    p.add_argument("--parse-mode", choices=("reference", "repair"), default="reference",
                   help="reference: bit-exact reference parser; repair: also recover truncated/damaged JSON")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N val records (images)")
    p.add_argument("--backend", choices=("hf", "vllm", "openai"), default="hf",
                   help="hf (transformers, CPU/GPU), vllm (GPU, extra sceneparser[vllm]) or openai (a running "
                        "OpenAI-compatible server: vllm serve, SGLang, sceneparser serve; extra sceneparser[remote])")
    p.add_argument("--base-url", default=None, help="--backend openai: the server's URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key", default=None, help="--backend openai: API key (default: $SCENEPARSER_API_KEY, else none)")
    p.add_argument("--remote-model", default=None, help="--backend openai: served model name (default: the first the server lists)")
    p.add_argument("--concurrency", type=int, default=8, help="--backend openai: requests in flight (default 8)")
    p.add_argument("--num-shards", type=int, default=1, help="split the records into K contiguous shards")
    p.add_argument("--shard-index", type=int, default=0, help="the shard this process answers (0-based)")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave samples with missing/undecodable images out of the metrics (reference behaviour); "
                        "by default they score as empty predictions")
    p.add_argument("--overwrite", action="store_true", help="discard answers in --out from another run and start afresh")
    p.add_argument("--question", default=None,
                   help="question template; '[OBJ]' is replaced by the category (object level). "
                        "'Return a single JSON object only.\\n' is prepended. Default: the reference driver's")
    p.add_argument("--device", default=None, help="torch device (default: CUDA if available, else CPU; cuda:LOCAL_RANK under torchrun)")
    p.add_argument("--dtype", default=None, help="model dtype, e.g. bfloat16 or float32 (default: the backend's)")
    p.add_argument("--min-pixels", type=int, default=None,
                   help="smart_resize lower bound (default: 12544, the reference's; the shipped default model's own "
                        "setting when --model is left out)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="smart_resize upper bound (default: 2007040, the reference's; the shipped default model's "
                        "own setting when --model is left out)")
    p.add_argument("--max-model-len", type=int, default=4096, help="token budget of prompt + answer (reference vLLM max_model_len 4096; long answers are cut)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.8, help="vLLM only (reference 0.8)")
    p.add_argument("--no-fsync", action="store_true", help="do not fsync after each batch (faster on slow disks, less crash-safe)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true",
                   help="also write OUT/report.html (sceneparser report: tables, error types, gallery)")


def _model_and_pixels(args: argparse.Namespace) -> tuple[str, int, int]:
    """The model to evaluate and its pixel range.

    A named model gets the reference driver's range (12544..2007040) unless the flags say
    otherwise, as the released checkpoint expects. Without ``--model`` the shipped default model
    is used at the range it was trained at (its ``preprocessor_config.json``).
    """
    lo, hi = DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS
    model = args.model
    if args.backend == "openai":  # the model lives on the server
        model = args.remote_model or args.base_url
    elif model is None:
        path = resolve_model_path(None)  # a clear error when no default model is installed
        model = str(path)
        lo, hi = model_pixel_range(path, (lo, hi))
    elif args.min_pixels is None and args.max_pixels is None and os.path.isdir(model):
        own = model_pixel_range(model, (lo, hi))
        if own[1] < lo or own[1] * 4 <= hi:  # e.g. a small model trained at 224x168
            print(f"note: {model} was saved with max_pixels {own[1]} (its preprocessor_config.json); this "
                  f"evaluation resizes to the reference range {lo}..{hi}, as the released checkpoint expects. "
                  f"To score it at its own size pass --min-pixels {own[0]} --max-pixels {own[1]}",
                  file=sys.stderr)
    return (
        model,
        args.min_pixels if args.min_pixels is not None else lo,
        args.max_pixels if args.max_pixels is not None else hi,
    )


def config_from_args(args: argparse.Namespace):
    model, min_pixels, max_pixels = _model_and_pixels(args)
    return EvalConfig(
        model=model,
        data=args.data,
        out=args.out,
        image_root=args.image_root,
        mask_root=args.mask_root,
        level=args.level,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        parse_mode=args.parse_mode,
        limit=args.limit,
        backend=args.backend,
        base_url=args.base_url,
        api_key=args.api_key or os.environ.get("SCENEPARSER_API_KEY"),
        remote_model=args.remote_model,
        concurrency=args.concurrency,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        skip_missing=args.skip_missing,
        overwrite=args.overwrite,
        question=args.question,
        device=args.device,
        dtype=args.dtype,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        fsync=not args.no_fsync,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    try:
        outcome = run_eval(config_from_args(args))
    except KeyboardInterrupt:
        print(f"interrupted: the answers finished so far are saved in {args.out}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    except SceneParserError:
        raise
    except Exception:
        print(f"note: the answers finished so far are saved in {args.out}; "
              "run the same command again to resume after fixing the problem below", file=sys.stderr)
        raise
    if outcome.scored:
        print(format_summary(outcome.summary, outcome.final), file=sys.stdout, flush=True)
        if getattr(args, "report", False):
            report = build_report(outcome.out_dir)
            for w in report.warnings:
                print(f"warning: report: {w}", file=sys.stderr)
            print(f"  report           {report.path}", file=sys.stdout, flush=True)
    return 0
