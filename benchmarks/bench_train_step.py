"""Benchmark a training step (issue 6): tokens per second of the tiny model on the CPU.

Two measurements on the same synthetic batches (the data pipeline is built beforehand and is
not timed):

* ``raw``: forward + backward + AdamW step with the trainer's three parameter groups, in a loop;
* ``trainer``: the same number of steps through ``SceneParserTrainer.train`` (``max_steps``),
  i.e. with the DataLoader, logging every step and the bookkeeping, from the stage runner's
  ``training_arguments``.

Tokens are the non-padding input tokens (image tokens included); supervised tokens are the
answer tokens the loss sees. ``--gpu-3b`` (needs CUDA) times a Qwen2.5-VL-3B-shaped random model
instead (bf16, gradient checkpointing, sdpa): tokens/s and peak GPU memory.

    python benchmarks/bench_train_step.py --steps 30 --batch-size 4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def make_tsv(data_dir: Path, num_images: int, size: tuple[int, int]) -> Path:
    from sceneparser.data.convert import convert_jsonl
    from sceneparser.data.synth import generate_dataset

    tsv = data_dir / f"tsv_{num_images}_{size[0]}x{size[1]}"
    if (tsv / "annotations.tsv.lineidx").is_file():
        return tsv
    synth = data_dir / f"synth_{num_images}_{size[0]}x{size[1]}"
    generate_dataset(synth, num_images=num_images, seed=0, image_size=size, val_fraction=0.0)
    convert_jsonl(synth / "train.jsonl", tsv, image_root=synth, workers=1)
    return tsv


def qwen25vl_3b_config(tokenizer):
    """The Qwen2.5-VL-3B shape (docs/reference.md, *tokenizer*), wired to ``tokenizer``'s special ids."""
    from transformers import Qwen2_5_VLConfig

    tid = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
            "num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 128000,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            "bos_token_id": tid("<|endoftext|>"), "eos_token_id": tid("<|im_end|>"),
            "pad_token_id": tid("<|endoftext|>"), "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
            "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "in_channels": 3, "patch_size": 14,
            "spatial_merge_size": 2, "temporal_patch_size": 2,
        },
        image_token_id=tid("<|image_pad|>"), video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"),
        tie_word_embeddings=True,
    )


def batches_for(processor, tsv: Path, batch_size: int, count: int, max_pixels: int, pixel_format: str):
    from sceneparser.training.collator import SceneParserCollator
    from sceneparser.training.config import DataSection
    from sceneparser.training.dataset import build_dataset
    from sceneparser.training.stage import apply_pixel_limits

    apply_pixel_limits(processor, 3136, max_pixels)
    ds = build_dataset(tsv, processor, DataSection(pseudo="mix(0.5)"), seed=0, defer_pixels=True)
    collate = SceneParserCollator(processor.pad_token_id, image_processor=processor.image_processor, pixel_format=pixel_format)
    out = []
    for k in range(count):
        idx = [(k * batch_size + j) % len(ds) for j in range(batch_size)]
        out.append(collate([ds[i] for i in idx]))
    return ds, out


def raw_steps(model, processor, batches, steps: int, warmup: int, device) -> dict:
    import torch

    from sceneparser.model.patchify import materialise
    from sceneparser.training.params import parameter_groups

    model.train()
    opt = torch.optim.AdamW(parameter_groups(model, learning_rate=1e-4, mm_projector_lr=1e-4, vision_tower_lr=1e-5, weight_decay=0.01))
    tokens = supervised = 0
    start = None
    for k in range(warmup + steps):
        if k == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
        batch = dict(batches[k % len(batches)])
        stats = batch.pop("sp_stats")
        batch = {key: v.to(device) for key, v in batch.items()}
        if "pixel_patches" in batch:
            batch["pixel_values"] = materialise(processor.image_processor, batch.pop("pixel_patches"), batch["image_grid_thw"])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k >= warmup:
            tokens += stats["tokens"]
            supervised += stats["supervised_tokens"]
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    out = {"steps": steps, "seconds": round(wall, 3), "tokens_per_s": round(tokens / wall, 1),
           "supervised_tokens_per_s": round(supervised / wall, 1), "s_per_step": round(wall / steps, 4)}
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def trainer_steps(tsv: Path, out_dir: Path, steps: int, batch_size: int, threads: int, max_pixels: int, workers: int) -> dict:
    from sceneparser.training.config import load_config
    from sceneparser.training.stage import train_stage

    cfg = load_config("tiny", [
        f"train.max_steps={steps}", f"train.per_device_batch_size={batch_size}", "runtime.report_to=[]",
        "runtime.disable_tqdm=true", "runtime.save_steps=100000", f"runtime.num_threads={threads}",
        f"data.max_pixels={max_pixels}", f"data.num_workers={workers}",
    ]).for_stage(1)
    t = time.perf_counter()
    result = train_stage(cfg, tsv, out_dir, init="tiny", stage=1, resume="none")
    total = time.perf_counter() - t
    state = json.loads((out_dir / "trainer_state.json").read_text())
    runtime = next((h["train_runtime"] for h in state["log_history"] if "train_runtime" in h), total)
    tokens = result.stats["tokens"]
    return {"steps": result.global_step, "train_runtime_s": round(runtime, 2), "stage_total_s": round(total, 2),
            "tokens_per_s": round(tokens / runtime, 1), "supervised_tokens_per_s": round(result.stats["supervised_tokens"] / runtime, 1),
            "dataloader_workers": workers}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the trainer measurement")
    ap.add_argument("--image-size", default="224x168", help="synthetic image size WxH")
    ap.add_argument("--max-pixels", type=int, default=12544, help="image processor max_pixels (tiny preset: 12544)")
    ap.add_argument("--num-images", type=int, default=64)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--skip-trainer", action="store_true")
    ap.add_argument("--gpu-3b", action="store_true", help="time a Qwen2.5-VL-3B-shaped model on CUDA instead")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    w, h = (int(x) for x in args.image_size.lower().split("x"))
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="bench_train_step_"))
    data_dir.mkdir(parents=True, exist_ok=True)
    tsv = make_tsv(data_dir, args.num_images, (w, h))
    result: dict = {"threads": args.threads, "batch_size": args.batch_size, "image_size": args.image_size,
                    "max_pixels": args.max_pixels, "load_average_1min": round(os.getloadavg()[0], 2)}

    if args.gpu_3b:
        if not torch.cuda.is_available():
            print("--gpu-3b needs CUDA", file=sys.stderr)
            return 2
        from transformers import Qwen2_5_VLForConditionalGeneration

        from sceneparser.model.tiny import build_tiny

        _, processor = build_tiny(seed=0)  # tokenizer + processor; ids fit the 3B vocabulary
        config = qwen25vl_3b_config(processor.tokenizer)
        config._attn_implementation = "sdpa"
        device = torch.device("cuda")
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        _, batches = batches_for(processor, tsv, args.batch_size, 8, args.max_pixels, "uint8")
        result["model"] = "qwen2.5-vl-3b-shaped (random, bf16, grad checkpointing)"
        result["params_b"] = round(sum(p.numel() for p in model.parameters()) / 1e9, 3)
        result["raw"] = raw_steps(model, processor, batches, args.steps, args.warmup, device)
    else:
        from sceneparser.model.tiny import build_tiny

        model, processor = build_tiny(seed=0)
        ds, batches = batches_for(processor, tsv, args.batch_size, 8, args.max_pixels, "uint8")
        result["model"] = "tiny (build_tiny defaults)"
        result["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 3)
        result["tokens_per_batch"] = round(sum(b["sp_stats"]["tokens"] for b in batches) / len(batches), 1)
        result["raw"] = raw_steps(model, processor, batches, args.steps, args.warmup, torch.device("cpu"))
        if not args.skip_trainer:
            with tempfile.TemporaryDirectory() as tmp:
                result["trainer"] = trainer_steps(tsv, Path(tmp) / "run", args.steps, args.batch_size, args.threads,
                                                  args.max_pixels, args.workers)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
