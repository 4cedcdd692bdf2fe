"""``sceneparser train``: one curriculum stage, or the whole curriculum.

    sceneparser train --config {tiny|reference|PATH.yaml} --stage N --data TSV_DIR --output-dir OUT [--set k=v ...]
    sceneparser train --curriculum {tiny|reference|PATH.yaml} --data TSV_DIR --output-dir OUT [--set k=v ...]

A thin layer over :mod:`sceneparser.training` (config, curriculum, stage). The same command runs
under ``torchrun --nproc-per-node N [--nnodes M ...] -m sceneparser.cli train ...``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sceneparser.errors import InputError
from sceneparser.training.config import load_config, resolve_stage


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", metavar="NAME|PATH",
                       help="preset (tiny, reference) or YAML file; with stages, pick one with --stage")
    which.add_argument("--curriculum", metavar="NAME|PATH",
                       help="run every stage of this preset or YAML file: OUT/stage1, OUT/stage2, ... each from the previous")
    p.add_argument("--stage", type=int, default=None, help="the stage of --config to train (1, 2, 3)")
    p.add_argument("--stages", default=None, help="with --curriculum: only these stages, e.g. 2,3")
    p.add_argument("--data", help="training data: a TSV directory (images.tsv, annotations.tsv, annotations.tsv.lineidx) or a "
                        "folder of Parquet shards (sceneparser.data.hf)")
    p.add_argument("--output-dir", help="where the model directory (or OUT/stageN with --curriculum) is written")
    p.add_argument("--init", default=None,
                   help="model to start from: 'tiny', a model directory or a hub id (default: model.init; "
                        "stage 2/3 need the previous stage's directory)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=1 --set stages.2.data.pseudo=keep (repeatable)")
    p.add_argument("--resume", default="auto",
                   help="auto: continue from the newest checkpoint in the output dir (default); none: start over; "
                        "or a checkpoint directory")
    p.add_argument("--deepspeed", default=None, metavar="zero2|zero3|PATH",
                   help="DeepSpeed config: a shipped preset or a JSON file (needs pip install 'sceneparser[train]' and GPUs)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is visible")
    p.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")
    p.add_argument("--quiet", action="store_true", help="warnings only")


def _setup_logging(quiet: bool) -> None:
    rank = int(os.environ.get("RANK", "0"))
    level = logging.WARNING if (quiet or rank != 0) else logging.INFO
    fmt = "[%(asctime)s] %(levelname)s %(name)s: %(message)s" if rank == 0 else f"[rank {rank}] %(levelname)s %(name)s: %(message)s"
    root = logging.getLogger("sceneparser")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.deepspeed:
        overrides.append(f"runtime.deepspeed={args.deepspeed}")
    if args.cpu:
        overrides.append("runtime.use_cpu=true")
    cfg = load_config(args.curriculum or args.config, overrides)

    stages = None
    if args.stages:
        try:
            stages = [int(s) for s in args.stages.split(",") if s.strip()]
        except ValueError:
            raise InputError(f"--stages expects numbers such as 2,3, not {args.stages!r}") from None
    if args.curriculum and args.stage is not None:
        raise InputError("--stage goes with --config; with --curriculum use --stages")
    if args.config and args.stages:
        raise InputError("--stages goes with --curriculum; with --config use --stage")

    if args.print_config:
        if args.curriculum:
            sys.stdout.write(cfg.to_yaml())
        else:
            stage_cfg, init = resolve_stage(cfg, args.stage, args.init or "(previous stage)")
            sys.stdout.write(stage_cfg.to_yaml())
        return 0
    if not args.data or not args.output_dir:
        raise InputError("--data TSV_DIR and --output-dir OUT are required")

    _setup_logging(args.quiet)
    rank = int(os.environ.get("RANK", "0"))
    if args.curriculum:
        from sceneparser.training.curriculum import run_curriculum  # torch, transformers

        results = run_curriculum(cfg, args.data, args.output_dir, init=args.init, resume=args.resume, stages=stages)
    else:
        from sceneparser.training.stage import train_stage  # torch, transformers

        stage_cfg, init = resolve_stage(cfg, args.stage, args.init)
        results = [train_stage(stage_cfg, args.data, args.output_dir, init=init, stage=args.stage, resume=args.resume)]

    if rank == 0:
        for r in results:
            name = f"stage {r.stage}" if r.stage is not None else "training"
            if r.already_complete:
                print(f"{name}: already complete in {r.output_dir} (step {r.global_step})")
                continue
            loss = ""
            if r.losses:
                loss = f", loss {r.first_loss:.4f} -> {r.last_loss:.4f}"
            skipped = r.stats.get("skipped") or {}
            skip_txt = f", skipped {sum(skipped.values())} samples {skipped}" if skipped else ""
            print(f"{name}: {r.global_step} steps in {r.seconds:.1f}s{loss}{skip_txt} -> {r.output_dir}")
    return 0
