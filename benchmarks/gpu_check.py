"""One prepared GPU check (issue 20): the 3B-scale paths, each part in its own time-limited process.

Run it through ``scripts/gpu_check.sh`` (same arguments). On a CUDA machine::

    scripts/gpu_check.sh                       # writes $OUT/gpu_report.json (or ./gpu_report.json)
    scripts/gpu_check.sh --out report.json --scale small --skip-install

and on any machine (CI runs this, so the script cannot rot)::

    scripts/gpu_check.sh --dry-run             # tiny scale, CPU, transformers backend only

The parts, in order (each a subprocess of this script with its own time limit; a part that fails,
times out or runs out of memory is marked failed with its error and the others still run; the
exit status is non-zero at the end if any part failed):

``install``
    ``pip install`` the ``train`` and ``vllm`` extras (against the installed CUDA torch, with
    transformers pinned to the installed version so that no extra can replace it). A failed
    install leaves the parts that need it to fail with the import error.
``env``
    versions (python, torch, CUDA, transformers, vllm, deepspeed, ...), the GPU name and memory.
``build``
    a randomly initialised model with the released checkpoint's shapes (``--scale 3b``: the
    Qwen2.5-VL-3B text and vision configuration, 151,936 embedding rows) and Rex-Omni's tokenizer
    layout (``vocab.json`` + ``merges.txt`` from the real Qwen BPE ranks, ``<k>`` reusing id
    ``150643 + k``, 151,665 token ids, no ``tokenizer.json``), saved as the released checkpoint
    is laid out (transformers-4 ``config.json`` with ``rope_scaling``, weight names ``model.*`` /
    ``visual.*``, sharded safetensors, ``preprocessor_config.json``); then loaded back through
    the package's loader (tokenizer conversion, transformers' checkpoint conversion) and checked
    weight for weight. It also builds the smaller training model (``--train-scale``, same
    layout) and the synthetic data (``sceneparser synth`` / ``sceneparser convert``).
``generate_hf``
    the same prompts (synthetic images, several queries per image, a fixed output length through
    ``min_new_tokens``) through the transformers backend: (a) one query at a time, (b) batched,
    (c) batched with prefix reuse; (a)-(c) must give identical tokens. Queries/s, tokens/s and
    peak GPU memory for each.
``generate_vllm``
    (d) the vLLM backend with the reference engine settings on the same prompts; its agreement
    with (a) is reported (not required: bf16 kernels differ).
``eval_vllm`` / ``eval_hf``
    ``sceneparser eval`` on the synthetic samples with ``--backend vllm`` and ``--backend hf``:
    both metric sets and the wall time.
``train_zero2`` / ``train_zero3`` (CUDA) and ``train_plain`` (the dry run's CPU stand-in)
    ``sceneparser train --config reference`` for a few steps on synthetic TSV data (with
    DeepSpeed ZeRO-2 / ZeRO-3 under ``torchrun``), saving a checkpoint half-way; the saved model
    is reloaded with ``from_pretrained`` and must equal the trained weights, and a second run
    resumed from the half-way checkpoint must continue from the same loss.

The report (``--out``) holds every figure, the versions, the GPU name and pass/fail per part and
per check; a short table is printed. Work files (models, data, checkpoints) go to ``--work``
(default: a temporary directory, removed at the end unless ``--keep-work``); each part's log is
written next to the report (``<report>.logs/<part>.log``).
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sceneparser import prompts
from sceneparser.inference import GenerationRequest, GenerationSettings
from sceneparser.io import write_json
from sceneparser.model import loading, tiny, tokenizer

REPO = Path(__file__).resolve().parents[1]
SKIPPED_NEEDS_CUDA = "skipped: needs CUDA"

#: Embedding rows of Qwen2.5-VL-3B (the tokenizer's 151,665 ids, padded).
VOCAB_ROWS = 151936
#: Token ids of Rex-Omni's layout (docs/reference.md, *tokenizer*).
EXPECTED_IDS = {"<0>": 150643, "<999>": 151642, "<|endoftext|>": 151643, "<|im_end|>": 151645, "<|image_pad|>": 151655}
EXPECTED_NUM_IDS = 151665

#: Values of the released config that the small builder's defaults do not share.
RELEASED_CONFIG_VALUES = {
    "text_config": {"rms_norm_eps": 1e-06, "max_position_embeddings": 128000, "max_window_layers": 70},
    "vision_config": {"tokens_per_second": 2},
}

#: Model shapes. ``3b`` is Qwen2.5-VL-3B's text and vision configuration; the others keep its layout
#: (tokenizer, vocabulary, M-RoPE, windowed vision tower with full-attention blocks) at a smaller size.
SCALES: dict[str, dict[str, Any]] = {
    "3b": {
        "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
        "num_key_value_heads": 2, "mrope_section": (16, 24, 24), "vision_depth": 32, "vision_hidden_size": 1280,
        "vision_intermediate_size": 3420, "vision_num_heads": 16, "fullatt_block_indexes": (7, 15, 23, 31),
    },
    "small": {
        "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 4, "num_attention_heads": 8,
        "num_key_value_heads": 2, "mrope_section": (8, 12, 12), "vision_depth": 4, "vision_hidden_size": 256,
        "vision_intermediate_size": 512, "vision_num_heads": 4, "fullatt_block_indexes": (3,),
    },
    "tiny": {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "mrope_section": (2, 3, 3), "vision_depth": 1, "vision_hidden_size": 32,
        "vision_intermediate_size": 64, "vision_num_heads": 2, "fullatt_block_indexes": (0,),
    },
}


@dataclass(frozen=True)
class Part:
    name: str
    needs_cuda: bool
    limit_s: int  # on the GPU
    dry_limit_s: int
    group: int  # parts of one group run at the same time
    title: str


PARTS: tuple[Part, ...] = (
    Part("install", False, 200, 5, 0, "pip install sceneparser[vllm,train]"),
    Part("env", False, 60, 60, 1, "versions and GPU"),
    Part("build", False, 150, 150, 2, "released-layout random model + data"),
    Part("generate_hf", False, 150, 120, 3, "transformers (a) single (b) batched (c) prefix reuse"),
    Part("generate_vllm", True, 200, 5, 4, "vLLM (d), agreement with (a)"),
    Part("eval_vllm", True, 170, 5, 5, "sceneparser eval --backend vllm"),
    Part("eval_hf", False, 120, 120, 6, "sceneparser eval --backend hf"),
    Part("train_plain", False, 240, 240, 7, "reference preset, no DeepSpeed (CPU stand-in)"),
    Part("train_zero2", True, 240, 5, 8, "reference preset, DeepSpeed ZeRO-2"),
    Part("train_zero3", True, 240, 5, 8, "reference preset, DeepSpeed ZeRO-3"),
)
PART_BY_NAME = {p.name: p for p in PARTS}


# =============================================================================================
# the plan: every size and setting of one run
# =============================================================================================


def make_plan(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    dry = bool(args.dry_run)
    plan: dict[str, Any] = {
        "dry_run": dry,
        "work": str(work),
        "scale": args.scale or ("tiny" if dry else "3b"),
        "train_scale": args.train_scale or ("tiny" if dry else "small"),
        "device": "cpu" if dry else "cuda",
        "dtype": "float32" if dry else "bfloat16",
        "seed": 0,
        # generation: images x queries per image = prompts
        "gen_images": 4 if dry else 8,
        "gen_queries_per_image": 2 if dry else 4,
        "gen_image_size": (112, 112) if dry else (448, 336),
        "gen_new_tokens": args.new_tokens or (6 if dry else 32),
        "gen_batch_size": 4 if dry else 16,
        # evaluation: scene level, one sample per synthetic image
        "eval_samples": 4 if dry else 50,
        "eval_image_size": (112, 112) if dry else (320, 240),
        "eval_new_tokens": 6 if dry else 32,
        "eval_batch_size": 4 if dry else 16,
        # training: the reference preset with fewer steps
        "train_images": 16 if dry else 64,
        "train_image_size": (112, 112) if dry else (224, 224),
        "train_steps": 2 if dry else 20,
        "train_save_at": 1 if dry else 10,
        "train_grad_accum": 1 if dry else 8,  # the reference's 8 on the GPU
        "train_batch_size": 1 if dry else 2,  # the reference's 2 on the GPU
        "train_loss_rtol": 1e-4 if dry else 2e-2,
        "install": not (dry or args.skip_install),
    }
    # the pixel range written into the saved models: tiny scales keep images to a few tokens
    for key, scale in (("pixels", plan["scale"]), ("train_pixels", plan["train_scale"])):
        plan[key] = (4 * 28 * 28, 16 * 28 * 28) if scale == "tiny" else (12544, 2007040)
    for name in ("model", "train_model", "eval_data", "train_data", "tsv", "tokens_a"):
        plan[f"{name}_path"] = str(work / {"tokens_a": "tokens_a.json"}.get(name, name))
    return plan


# =============================================================================================
# helpers shared by the parts
# =============================================================================================


class PartFailure(Exception):
    """A part failed in an expected way; the message goes into the report."""


def _deadline() -> float:
    return float(os.environ.get("GPU_CHECK_DEADLINE", time.time() + 3600))


def _remaining(margin: float = 5.0) -> float:
    return max(1.0, _deadline() - time.time() - margin)


def _tail(text: str, n: int = 2500) -> str:
    text = text or ""
    return text if len(text) <= n else "..." + text[-n:]


def run_logged(cmd: list[str], log: Path, *, timeout: float | None = None, env: dict | None = None) -> tuple[int, float, str]:
    """Run ``cmd`` (output appended to ``log``) until done or ``timeout``; ``(rc, seconds, output tail)``."""
    timeout = _remaining() if timeout is None else min(timeout, _remaining())
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=REPO)
        rc = _wait(proc, timeout)
    seconds = time.perf_counter() - t0
    text = log.read_text(encoding="utf-8", errors="replace")
    return rc, seconds, _tail(text, 4000)


def _wait(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for ``proc``; past ``timeout`` stop its whole process group (torchrun / vLLM children)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return 124


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def failure(what: str, rc: int, tail: str) -> str:
    """``what`` exited with ``rc``: its last output line, then the tail of its output."""
    lines = [line.strip() for line in (tail or "").splitlines() if line.strip()]
    why = "timed out" if rc == 124 else f"exited with {rc}"
    return f"{what} {why}: {lines[-1] if lines else '(no output)'}\n{tail}"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sceneparser.cli", *args]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _gpu_memory() -> dict[str, float | None]:
    """Peak memory allocated by torch in this process and memory in use on the whole device (GiB)."""
    import torch

    if not torch.cuda.is_available():
        return {"peak_allocated_gib": None, "device_used_gib": None}
    free, total = torch.cuda.mem_get_info()
    return {
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
        "device_used_gib": round((total - free) / 2**30, 3),
    }


# =============================================================================================
# building a checkpoint in the released layout
# =============================================================================================


def legacy_weight_name(name: str) -> str:
    """The released checkpoint's (transformers 4) name of a transformers-5 parameter name."""
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    if name.startswith("model.visual."):
        return name[len("model."):]
    return name


def legacy_config(config, shape: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` as the released checkpoint writes it: flat text fields, ``rope_scaling``."""
    t = config.get_text_config()
    v = config.vision_config
    rope = dict(getattr(t, "rope_parameters", None) or {})
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "attention_dropout": 0.0,
        "bos_token_id": t.bos_token_id,
        "eos_token_id": t.eos_token_id,
        "vision_start_token_id": config.vision_start_token_id,
        "vision_end_token_id": config.vision_end_token_id,
        "vision_token_id": config.vision_start_token_id + 2,  # <|vision_pad|>
        "image_token_id": config.image_token_id,
        "video_token_id": config.video_token_id,
        "hidden_act": "silu",
        "hidden_size": t.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": t.intermediate_size,
        "max_position_embeddings": t.max_position_embeddings,
        "max_window_layers": t.max_window_layers,
        "num_attention_heads": t.num_attention_heads,
        "num_hidden_layers": t.num_hidden_layers,
        "num_key_value_heads": t.num_key_value_heads,
        "rms_norm_eps": t.rms_norm_eps,
        "rope_theta": float(rope.get("rope_theta", 1e6)),
        "rope_scaling": {"type": "mrope", "mrope_section": list(shape["mrope_section"])},
        "sliding_window": 32768,
        "use_sliding_window": False,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.49.0",
        "use_cache": True,
        "vocab_size": t.vocab_size,
        "vision_config": {
            "depth": v.depth,
            "hidden_act": "silu",
            "hidden_size": v.hidden_size,
            "intermediate_size": v.intermediate_size,
            "num_heads": v.num_heads,
            "in_chans": 3,
            "out_hidden_size": v.out_hidden_size,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": v.window_size,
            "fullatt_block_indexes": list(v.fullatt_block_indexes),
            "tokens_per_second": v.tokens_per_second,
            "temporal_patch_size": 2,
        },
    }


def released_preprocessor_config(min_pixels: int, max_pixels: int) -> dict[str, Any]:
    return {
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
    }


def write_legacy_weights(model, out: Path, shard_bytes: int = 4 * 2**30) -> int:
    """Sharded safetensors with the released names (tied ``lm_head`` left out); returns the bytes."""
    from safetensors.torch import save_file

    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    shards: list[list[tuple[str, Any]]] = [[]]
    size = 0
    total = 0
    for name, tensor in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((legacy_weight_name(name), tensor))
        size += nbytes
        total += nbytes
    n = len(shards)
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards):
        fname = "model.safetensors" if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        save_file({k: t.detach().to("cpu").contiguous() for k, t in shard}, str(out / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k, _ in shard})
    if n > 1:
        write_json(out / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    return total


def build_released_checkpoint(out: Path, scale: str, *, device: str, dtype: str, seed: int,
                              pixels: tuple[int, int]) -> tuple[Any, dict[str, float]]:
    """Write a random model of ``scale`` in the released layout to ``out``; ``(model, figures)``."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    shape = SCALES[scale]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tokenizer.write_rex_omni_tokenizer_dir(out)
    tok = tokenizer.load_tokenizer(out)
    overrides = {k: v for k, v in shape.items() if k != "fullatt_block_indexes"}
    config, _ = tiny.tiny_config(tok, vocab_size=VOCAB_ROWS, window_size=112, min_pixels=pixels[0],
                                 max_pixels=pixels[1], **overrides)
    config.vision_config.fullatt_block_indexes = list(shape["fullatt_block_indexes"])
    for section, values in RELEASED_CONFIG_VALUES.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    t1 = time.perf_counter()
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.to(_torch_dtype(dtype)).eval()
    _sync(device)
    t2 = time.perf_counter()
    nbytes = write_legacy_weights(model, out)
    write_json(out / "config.json", legacy_config(config, shape))
    write_json(out / "generation_config.json", {
        "bos_token_id": config.get_text_config().bos_token_id,
        "eos_token_id": [EXPECTED_IDS["<|im_end|>"], EXPECTED_IDS["<|endoftext|>"]],
        "pad_token_id": EXPECTED_IDS["<|endoftext|>"],
        "do_sample": False,
        "repetition_penalty": 1.05,
        "transformers_version": "4.49.0",
    })
    write_json(out / "preprocessor_config.json", released_preprocessor_config(*pixels))
    write_json(out / "chat_template.json", {"chat_template": tokenizer.CHAT_TEMPLATE})
    t3 = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    return model, {
        "parameters_b": round(params / 1e9, 4),
        "weights_gib": round(nbytes / 2**30, 3),
        "tokenizer_s": round(t1 - t0, 2),
        "init_s": round(t2 - t1, 2),
        "save_s": round(t3 - t2, 2),
    }


def check_loaded(built, path: Path, *, device: str, dtype: str) -> tuple[dict[str, bool], dict[str, float], dict]:
    """Load ``path`` through the package's loader and compare it with the built model."""
    import torch

    t0 = time.perf_counter()
    model, processor = loading.load_model_dir(path, device=device, dtype=dtype)
    _sync(device)
    load_s = time.perf_counter() - t0
    want = built.state_dict()
    got = model.state_dict()
    differing = [k for k, t in want.items() if k not in got or not torch.equal(t, got[k])]
    tok = processor.tokenizer
    token_ids = {t: tok.convert_tokens_to_ids(t) for t in EXPECTED_IDS}
    num_ids = max(tok.get_vocab().values()) + 1
    text = tok(prompts.chat_text(prompts.object_question("mug")), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([text], device=device)
    with torch.inference_mode():
        logits_diff = float((built(input_ids=ids).logits.float() - model(input_ids=ids).logits.float()).abs().max())
    checks = {
        "config_converted": _config_summary(model.config) == _config_summary(built.config),
        "weights_equal_after_conversion": not differing and set(want) == set(got),
        "logits_equal_after_conversion": logits_diff == 0.0,
        "token_ids_match_rex_omni": token_ids == EXPECTED_IDS,
        "num_token_ids_151665": num_ids == EXPECTED_NUM_IDS,
        "no_tokenizer_json_shipped": not (path / "tokenizer.json").exists(),
        "reused_ids_layout": tokenizer.detect_layout(path) == "reused-ids",
    }
    info = {"differing_tensors": differing[:5], "token_ids": token_ids, "num_token_ids": num_ids,
            "config": _config_summary(model.config)}
    del model
    return checks, {"load_s": round(load_s, 2), "logits_max_abs_diff": logits_diff}, info


def _config_summary(config) -> dict[str, Any]:
    """The shape-defining fields of a Qwen2.5-VL config (text, rope, vision)."""
    t, v = config.get_text_config(), config.vision_config
    rope = dict(getattr(t, "rope_parameters", None) or {})
    out = {k: getattr(t, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                      "num_key_value_heads", "vocab_size", "rms_norm_eps")}
    out["mrope_section"] = list(rope.get("mrope_section") or [])
    out["rope_theta"] = float(rope.get("rope_theta") or 0.0)
    out["tie_word_embeddings"] = bool(config.tie_word_embeddings)
    out.update({f"vision_{k}": getattr(v, k) for k in ("depth", "hidden_size", "intermediate_size", "num_heads",
                                                       "out_hidden_size", "window_size", "tokens_per_second")})
    out["vision_fullatt_block_indexes"] = list(v.fullatt_block_indexes)
    return out


# =============================================================================================
# the parts (each runs in its own process: ``gpu_check.py --part NAME``)
# =============================================================================================


def part_install(plan: dict, log: Path) -> dict:
    steps: dict[str, Any] = {}
    constraints = Path(plan["work"]) / "constraints.txt"
    pins = []
    for name in ("transformers", "torch"):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    # transformers is pinned (the package needs 5.x); torch is not: vLLM pins its own
    constraints.write_text("\n".join(p for p in pins if p.startswith("transformers")) + "\n", encoding="utf-8")
    failed = []
    for extra, module in (("train", "deepspeed"), ("vllm", "vllm")):
        if _importable(module):
            steps[extra] = {"status": "already installed"}
            continue
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", f"{REPO}[{extra}]",
               "-c", str(constraints)]
        rc, seconds, tail = run_logged(cmd, log, timeout=_remaining() - 5)
        steps[extra] = {"status": "ok" if rc == 0 else ("timed out" if rc == 124 else f"rc={rc}"),
                        "seconds": round(seconds, 1)}
        if rc != 0:
            steps[extra]["error"] = tail[-1500:]
            failed.append(extra)
    result = {"figures": {f"{k}_s": v.get("seconds", 0.0) for k, v in steps.items()}, "info": {"steps": steps, "pins": pins},
              "checks": {f"{k}_installed": k not in failed for k in steps}}
    if failed:
        result["error"] = "install failed for " + ", ".join(failed) + " (the parts that need them fail with the import error)"
    return result


def _importable(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0


def part_env(plan: dict, log: Path) -> dict:
    versions = {}
    for name in ("torch", "transformers", "vllm", "deepspeed", "accelerate", "peft", "tokenizers", "safetensors", "sceneparser"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {"python": sys.version.split()[0], "versions": versions, "cpu_count": os.cpu_count()}
    import torch

    info["cuda_available"] = torch.cuda.is_available()
    info["cuda"] = torch.version.cuda
    figures = {}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        figures["gpu_memory_gib"] = round(props.total_memory / 2**30, 2)
    else:
        info["gpu"] = None
    return {"figures": figures, "info": info, "checks": {}}


def part_build(plan: dict, log: Path) -> dict:
    figures: dict[str, float] = {}
    checks: dict[str, bool] = {}
    info: dict[str, Any] = {}
    builds = [("model", plan["scale"], tuple(plan["pixels"]))]
    same = plan["train_scale"] == plan["scale"] and tuple(plan["train_pixels"]) == tuple(plan["pixels"])
    if not same:
        builds.append(("train_model", plan["train_scale"], tuple(plan["train_pixels"])))
    for key, scale, pixels in builds:
        path = Path(plan[f"{key}_path"])
        built, fig = build_released_checkpoint(path, scale, device=plan["device"], dtype=plan["dtype"],
                                               seed=plan["seed"], pixels=pixels)
        chk, fig2, inf = check_loaded(built, path, device=plan["device"], dtype=plan["dtype"])
        del built
        _free_cuda()
        figures.update({f"{key}_{k}": v for k, v in {**fig, **fig2}.items()})
        checks.update({f"{key}_{k}": v for k, v in chk.items()})
        info[key] = {"scale": scale, "path": str(path), **inf}
    if same:
        os.symlink(plan["model_path"], plan["train_model_path"])

    # data: synthetic images in the benchmark format (eval) and the training TSV layout
    w, h = plan["eval_image_size"]
    rc, s1, tail = run_logged(cli("synth", "--out", plan["eval_data_path"], "--num-images", str(plan["eval_samples"]),
                                  "--seed", "11", "--image-size", f"{w}x{h}", "--val-fraction", "1.0", "--no-progress"), log)
    if rc != 0:
        raise PartFailure(failure("sceneparser synth (eval data)", rc, tail))
    w, h = plan["train_image_size"]
    rc, s2, tail = run_logged(cli("synth", "--out", plan["train_data_path"], "--num-images", str(plan["train_images"]),
                                  "--seed", "7", "--image-size", f"{w}x{h}", "--val-fraction", "0.0", "--no-progress"), log)
    if rc != 0:
        raise PartFailure(failure("sceneparser synth (training data)", rc, tail))
    rc, s3, tail = run_logged(cli("convert", "--json-file", str(Path(plan["train_data_path"]) / "train.jsonl"),
                                  "--out-dir", plan["tsv_path"], "--image-root", plan["train_data_path"],
                                  "--workers", "2", "--no-progress"), log)
    if rc != 0:
        raise PartFailure(failure("sceneparser convert", rc, tail))
    figures["data_s"] = round(s1 + s2 + s3, 2)
    return {"figures": figures, "checks": checks, "info": info}


def _free_cuda() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synthetic_requests(plan: dict):
    """``gen_images`` x ``gen_queries_per_image`` requests; the queries of one image share its key."""
    rng = np.random.default_rng(1234)
    w, h = plan["gen_image_size"]
    categories = ["mug", "chair", "table", "bottle", "kettle", "laptop", "scissors", "drawer"]
    requests = []
    for i in range(plan["gen_images"]):
        arr = np.empty((h, w, 3), dtype=np.uint8)
        arr[:] = rng.integers(0, 256, size=3, dtype=np.uint8)
        for _ in range(4):
            x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
            x1, y1 = int(rng.integers(x0 + 4, w)), int(rng.integers(y0 + 4, h))
            arr[y0:y1, x0:x1] = rng.integers(0, 256, size=3, dtype=np.uint8)
        image = Image.fromarray(arr, "RGB")
        for q in range(plan["gen_queries_per_image"]):
            cat = categories[(i + q) % len(categories)]
            requests.append(GenerationRequest(image=image, question=prompts.object_question(cat), image_key=f"img{i}"))
    return requests


def _outputs(backend, requests) -> list:
    """``backend.generate`` -> a list of outputs (``GenerationOutput``; older backends: via ``generate_detailed``)."""
    outs = backend.generate(requests)
    if outs and isinstance(outs[0], str) and hasattr(backend, "generate_detailed"):
        outs = backend.generate_detailed(requests)
    return list(outs)


def _token_ids(out) -> list[int] | None:
    ids = getattr(out, "token_ids", None)
    return [int(t) for t in ids] if ids is not None else None


def _agreement(ref: list[list[int]], other: list[list[int]]) -> dict[str, float]:
    """Identical sequences and the mean share of tokens before the first difference."""
    same = sum(1 for a, b in zip(ref, other) if a == b)
    prefix = []
    for a, b in zip(ref, other):
        n = 0
        for x, y in zip(a, b):
            if x != y:
                break
            n += 1
        prefix.append(n / max(1, max(len(a), len(b))))
    return {"identical": same, "of": len(ref), "identical_share": round(same / max(1, len(ref)), 4),
            "mean_common_prefix_share": round(sum(prefix) / max(1, len(prefix)), 4)}


def part_generate_hf(plan: dict, log: Path) -> dict:
    import torch

    from sceneparser.inference import TransformersBackend

    device, n = plan["device"], plan["gen_new_tokens"]
    t0 = time.perf_counter()
    base = TransformersBackend.from_pretrained(plan["model_path"], device=device, dtype=plan["dtype"],
                                               max_new_tokens=n, min_new_tokens=n)
    _sync(device)
    figures: dict[str, Any] = {"load_s": round(time.perf_counter() - t0, 2)}
    requests = synthetic_requests(plan)
    modes = {
        "a_single": {"batch_size": 1, "prefix_reuse": False},
        "b_batched": {"batch_size": plan["gen_batch_size"], "prefix_reuse": False},
        "c_batched_prefix_reuse": {"batch_size": plan["gen_batch_size"], "prefix_reuse": True},
    }
    settings = GenerationSettings(max_new_tokens=n, min_new_tokens=n)
    _outputs(TransformersBackend(base.model, base.processor, settings, batch_size=2), requests[:2])  # warm-up
    tokens: dict[str, list[list[int]]] = {}
    texts: dict[str, list[str]] = {}
    for mode, kw in modes.items():
        backend = TransformersBackend(base.model, base.processor, settings, **kw)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        _sync(device)
        t = time.perf_counter()
        outs = _outputs(backend, requests)
        _sync(device)
        dt = time.perf_counter() - t
        tokens[mode] = [_token_ids(o) or [] for o in outs]
        texts[mode] = [o.text for o in outs]
        ntok = sum(len(x) for x in tokens[mode])
        figures[mode] = {"seconds": round(dt, 3), "queries_per_s": round(len(requests) / dt, 3),
                         "tokens_per_s": round(ntok / dt, 2), "output_tokens": ntok, **_gpu_memory()}
    ref = tokens["a_single"]
    figures["b_vs_a"] = _agreement(ref, tokens["b_batched"])
    figures["c_vs_a"] = _agreement(ref, tokens["c_batched_prefix_reuse"])
    write_json(plan["tokens_a_path"], {"tokens": ref, "texts": texts["a_single"], "new_tokens": n})
    checks = {
        "fixed_output_length": all(len(x) == n for seqs in tokens.values() for x in seqs),
        "b_tokens_identical_to_a": tokens["b_batched"] == ref,
        "c_tokens_identical_to_a": tokens["c_batched_prefix_reuse"] == ref,
    }
    info = {"prompts": len(requests), "images": plan["gen_images"], "new_tokens": n, "dtype": plan["dtype"],
            "sample_text_a": texts["a_single"][0][:200]}
    return {"figures": figures, "checks": checks, "info": info}


def _fix_min_tokens(backend, n: int) -> None:
    """Make vLLM produce exactly ``n`` tokens per request (the backend has no minimum-length option):
    ``min_tokens`` joins the sampling arguments it builds for each request (``sampling_for``)."""
    build = backend.sampling_for
    backend.sampling_for = lambda request: {**build(request), "min_tokens": n}


def part_generate_vllm(plan: dict, log: Path) -> dict:
    from sceneparser.inference import VLLMBackend

    n = plan["gen_new_tokens"]
    params = inspect.signature(VLLMBackend).parameters
    lo, hi = loading.model_pixel_range(plan["model_path"], tuple(plan["pixels"]))
    kw: dict[str, Any] = {}
    if "settings" in params:
        kw["settings"] = GenerationSettings(max_new_tokens=n, min_new_tokens=n)
    else:
        kw["max_new_tokens"] = n
        if "min_new_tokens" in params:
            kw["min_new_tokens"] = n
    for name, value in (("min_pixels", lo), ("max_pixels", hi)):
        if name in params:
            kw[name] = value
    t0 = time.perf_counter()
    backend = VLLMBackend(plan["model_path"], **kw)
    startup = time.perf_counter() - t0
    _fix_min_tokens(backend, n)
    requests = synthetic_requests(plan)
    backend.generate(requests[:2])  # warm-up
    t = time.perf_counter()
    outs = list(backend.generate(requests))
    dt = time.perf_counter() - t
    ref = json.loads(Path(plan["tokens_a_path"]).read_text(encoding="utf-8")) if Path(plan["tokens_a_path"]).is_file() else None
    figures: dict[str, Any] = {"startup_s": round(startup, 2)}
    checks: dict[str, bool] = {}
    ids = [_token_ids(o) for o in outs]
    if all(x is not None for x in ids):
        ntok = sum(len(x) for x in ids)  # type: ignore[arg-type]
        checks["fixed_output_length"] = all(len(x) == n for x in ids)  # type: ignore[arg-type]
        if ref is not None:
            figures["d_vs_a"] = _agreement(ref["tokens"], ids)  # type: ignore[arg-type]
    else:  # a backend that returns text only: agreement of the texts
        texts = [o if isinstance(o, str) else getattr(o, "text", "") for o in outs]
        ntok = None
        if ref is not None:
            same = sum(1 for a, b in zip(ref["texts"], texts) if a == b)
            figures["d_vs_a_text"] = {"identical": same, "of": len(texts), "identical_share": round(same / max(1, len(texts)), 4)}
    figures["d_vllm"] = {"seconds": round(dt, 3), "queries_per_s": round(len(requests) / dt, 3),
                         "tokens_per_s": round(ntok / dt, 2) if ntok is not None else None,
                         "output_tokens": ntok, **_gpu_memory()}
    info = {"agreement_reference": "a_single" if ref is not None else "missing (generate_hf did not finish)",
            "engine": "reference settings (gpu_memory_utilization 0.8, max_model_len 4096); device_used_gib includes "
                      "vLLM's preallocated KV cache"}
    return {"figures": figures, "checks": checks, "info": info}


def _eval_part(plan: dict, log: Path, backend: str) -> dict:
    out = Path(plan["work"]) / f"eval_{backend}"
    data = Path(plan["eval_data_path"])
    lo, hi = plan["pixels"]
    cmd = cli("eval", "--model", plan["model_path"], "--data", str(data / "val.jsonl"), "--image-root", str(data),
              "--out", str(out), "--level", "scene", "--limit", str(plan["eval_samples"]),
              "--max-new-tokens", str(plan["eval_new_tokens"]), "--batch-size", str(plan["eval_batch_size"]),
              "--backend", backend, "--min-pixels", str(lo), "--max-pixels", str(hi), "--overwrite", "--no-progress")
    if backend == "hf":
        cmd += ["--device", plan["device"], "--dtype", plan["dtype"]]
    rc, seconds, tail = run_logged(cmd, log)
    if rc != 0:
        raise PartFailure(failure(f"sceneparser eval --backend {backend}", rc, tail))
    summary = json.loads((out / "eval_summary.json").read_text(encoding="utf-8"))
    final = json.loads((out / "final_metrics.json").read_text(encoding="utf-8"))
    timing = summary.get("timing") or {}
    figures = {
        "wall_s": round(seconds, 2),
        "samples_scored": summary.get("samples_scored"),
        "metrics": {k: v for k, v in final.items() if isinstance(v, (int, float))},
        "samples_per_s_loop": timing.get("samples_per_s_loop"),
    }
    checks = {"scored_all_samples": summary.get("samples_scored") == plan["eval_samples"]}
    return {"figures": figures, "checks": checks, "info": {"parse_status": summary.get("parse_status")}}


def part_eval_hf(plan: dict, log: Path) -> dict:
    return _eval_part(plan, log, "hf")


def part_eval_vllm(plan: dict, log: Path) -> dict:
    return _eval_part(plan, log, "vllm")


def _losses(path: Path) -> dict[int, float]:
    record = loading.read_extra(path).get("training") or {}
    return {int(step): float(loss) for step, loss in record.get("losses", [])}


def _train_part(plan: dict, log: Path, zero: str | None) -> dict:
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from sceneparser.training.params import parameter_checksum

    root = Path(plan["work"]) / f"train_{zero or 'plain'}"
    a, b = root / "a", root / "b"
    steps, save_at = plan["train_steps"], plan["train_save_at"]
    sets = [
        f"train.max_steps={steps}", f"runtime.save_steps={save_at}", "runtime.logging_steps=1",
        "runtime.report_to=[]", "runtime.disable_tqdm=true", f"train.gradient_accumulation_steps={plan['train_grad_accum']}",
        f"train.per_device_batch_size={plan['train_batch_size']}",
        "data.num_workers=0" if plan["dry_run"] else "data.num_workers=2",
    ]
    if zero is None:
        sets += ["runtime.deepspeed=null"]
        if plan["device"] == "cpu":
            sets += ["runtime.precision=fp32", "model.dtype=float32", "runtime.gradient_checkpointing=false"]
    args = ["train", "--config", "reference", "--stage", "1", "--data", plan["tsv_path"], "--init", plan["train_model_path"], "--quiet"]
    for s in sets:
        args += ["--set", s]
    if zero is not None:
        args += ["--deepspeed", zero]
    if plan["device"] == "cpu":
        args += ["--cpu"]

    def launch(*extra: str) -> list[str]:
        if zero is None:
            return cli(*args, *extra)
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port",
                str(_free_port()), "-m", "sceneparser.cli", *args, *extra]

    figures: dict[str, Any] = {}
    rc, seconds, tail = run_logged(launch("--output-dir", str(a), "--resume", "none"), log)
    figures["run_s"] = round(seconds, 2)
    if rc != 0:
        raise PartFailure(failure("training run", rc, tail))
    half = a / f"checkpoint-{save_at}"
    rc, seconds, tail = run_logged(launch("--output-dir", str(b), "--resume", str(half)), log)
    figures["resumed_run_s"] = round(seconds, 2)
    resumed_ok = rc == 0
    resume_error = None if resumed_ok else failure("resumed run", rc, tail)

    # the saved model, reloaded with from_pretrained, against the trained weights: the checksum the
    # training run took of what it saved (fp32 loading keeps bf16 and fp32 values exact)
    record = loading.read_extra(a).get("training") or {}
    t = time.perf_counter()
    reloaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(a), dtype=torch.float32)
    figures["reload_s"] = round(time.perf_counter() - t, 2)
    checks: dict[str, bool] = {"reloaded_weights_equal_trained": parameter_checksum(reloaded) == record.get("parameter_checksum")}
    # and against the last checkpoint's weights, at the checkpoint's precision (the module's bf16
    # copy of DeepSpeed's fp32 master weights)
    last = a / f"checkpoint-{steps}"
    if any(last.glob("*.safetensors")):
        ckpt = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(last), dtype="auto").state_dict()
        mine = reloaded.state_dict()
        checks["reloaded_weights_equal_last_checkpoint"] = set(mine) == set(ckpt) and all(
            torch.equal(v.to(ckpt[k].dtype), ckpt[k]) for k, v in mine.items()
        )
    losses_a = _losses(a)
    figures["global_step"] = record.get("global_step")
    figures["first_loss"] = losses_a.get(min(losses_a)) if losses_a else None
    figures["last_loss"] = losses_a.get(max(losses_a)) if losses_a else None
    checks["trained_all_steps"] = record.get("global_step") == steps
    if resumed_ok:
        losses_b = _losses(b)
        first = min(losses_b) if losses_b else None
        if first is None or first not in losses_a:
            checks["resumed_run_continues_from_the_same_loss"] = False
        else:
            la, lb = losses_a[first], losses_b[first]
            figures["resumed_first_step"] = first
            figures["loss_at_resumed_step"] = {"original": la, "resumed": lb}
            common = [s for s in losses_b if s in losses_a]
            figures["max_rel_loss_diff_after_resume"] = max(abs(losses_a[s] - losses_b[s]) / max(1e-8, abs(losses_a[s])) for s in common)
            checks["resumed_run_continues_from_the_same_loss"] = (
                first == save_at + 1 and math.isclose(la, lb, rel_tol=plan["train_loss_rtol"], abs_tol=1e-6)
            )
    else:
        checks["resumed_run_continues_from_the_same_loss"] = False
    result = {"figures": figures, "checks": checks, "info": {"deepspeed": zero, "init": plan["train_model_path"]}}
    if resume_error:
        result["error"] = resume_error
    return result


def part_train_plain(plan: dict, log: Path) -> dict:
    return _train_part(plan, log, None)


def part_train_zero2(plan: dict, log: Path) -> dict:
    return _train_part(plan, log, "zero2")


def part_train_zero3(plan: dict, log: Path) -> dict:
    return _train_part(plan, log, "zero3")


PART_FUNCTIONS: dict[str, Callable[[dict, Path], dict]] = {
    "install": part_install,
    "env": part_env,
    "build": part_build,
    "generate_hf": part_generate_hf,
    "generate_vllm": part_generate_vllm,
    "eval_vllm": part_eval_vllm,
    "eval_hf": part_eval_hf,
    "train_plain": part_train_plain,
    "train_zero2": part_train_zero2,
    "train_zero3": part_train_zero3,
}


def run_part(name: str, plan: dict, result_file: Path, log: Path) -> int:
    """The body of ``--part NAME``: run one part and write its result (status passed / failed)."""
    t0 = time.perf_counter()
    try:
        result = PART_FUNCTIONS[name](plan, log)
        error = result.pop("error", None)
        failed = [k for k, ok in (result.get("checks") or {}).items() if not ok]
        if failed and not error:
            error = "failed checks: " + ", ".join(failed)
        result["status"] = "failed" if error else "passed"
        result["error"] = error
    except PartFailure as exc:
        result = {"status": "failed", "error": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - every failure, OOM included, goes into the report
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": _tail(traceback.format_exc(), 3000)}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(result_file, result)
    return 0 if result["status"] == "passed" else 1


# =============================================================================================
# the orchestrator
# =============================================================================================


def _child_env(plan: dict, deadline: float) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["SCENEPARSER_CACHE"] = str(Path(plan["work"]) / "cache")
    env["GPU_CHECK_DEADLINE"] = f"{deadline:.1f}"
    if plan["dry_run"]:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _cuda_available(env: dict[str, str]) -> tuple[bool, str | None]:
    proc = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    if proc.returncode != 0:
        return False, _tail(proc.stderr, 800)
    return proc.stdout.strip().endswith("True"), None


def _skip_reason(part: Part, plan: dict, cuda: bool, selected: set[str] | None) -> tuple[str, str] | None:
    """``(status, reason)`` for a part that does not run, else None."""
    if selected is not None and part.name not in selected:
        return "skipped", "skipped: not selected (--parts)"
    if part.name == "install" and not plan["install"]:
        return "skipped", "skipped: dry run installs nothing" if plan["dry_run"] else "skipped: --skip-install"
    if part.name == "train_plain" and not plan["dry_run"]:
        return "skipped", "skipped: the CUDA run trains with DeepSpeed (train_zero2, train_zero3)"
    if part.needs_cuda and not cuda:
        if plan["dry_run"]:
            return "skipped", SKIPPED_NEEDS_CUDA
        return "failed", "CUDA is not available on this machine"
    return None


def run_all(args: argparse.Namespace) -> int:
    started = time.time()
    report_path = Path(args.out) if args.out else Path(os.environ.get("OUT") or ".") / "gpu_report.json"
    report_path = report_path.resolve()
    logs = report_path.with_name(report_path.name + ".logs")
    logs.mkdir(parents=True, exist_ok=True)
    own_work = args.work is None
    work = Path(args.work or tempfile.mkdtemp(prefix="sceneparser_gpu_check_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args, work)
    budget = float(args.budget or (420 if args.dry_run else 480))
    deadline = started + budget
    write_json(work / "plan.json", plan)
    env = _child_env(plan, deadline)
    selected = set(args.parts.split(",")) if args.parts else None
    if selected is not None and selected - set(PART_BY_NAME):
        print(f"unknown parts: {sorted(selected - set(PART_BY_NAME))} (known: {', '.join(PART_BY_NAME)})", file=sys.stderr)
        return 2

    results: dict[str, dict] = {}
    cuda: bool | None = None
    cuda_error = None
    for group in sorted({p.group for p in PARTS}):
        parts = [p for p in PARTS if p.group == group]
        if cuda is None and any(p.name not in ("install",) for p in parts):
            cuda, cuda_error = (False, None) if plan["dry_run"] else _cuda_available(env)
        running = []
        for part in parts:
            skip = _skip_reason(part, plan, bool(cuda), selected)
            if skip is not None:
                status, reason = skip
                results[part.name] = {"status": status, "reason": reason, "error": None if status == "skipped" else reason,
                                      "seconds": 0.0, "figures": {}, "checks": {}}
                if status == "failed" and cuda_error:
                    results[part.name]["error"] += f" ({cuda_error})"
                continue
            limit = min(part.dry_limit_s if plan["dry_run"] else part.limit_s, deadline - time.time())
            if limit < 5:
                results[part.name] = {"status": "failed", "error": "no time left in the budget", "seconds": 0.0,
                                      "figures": {}, "checks": {}}
                continue
            result_file = work / "results" / f"{part.name}.json"
            result_file.unlink(missing_ok=True)
            result_file.parent.mkdir(parents=True, exist_ok=True)
            log = logs / f"{part.name}.log"
            log.write_text("", encoding="utf-8")
            part_env = {**env, "GPU_CHECK_DEADLINE": f"{time.time() + limit:.1f}"}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--part", part.name, "--plan", str(work / "plan.json"),
                   "--result", str(result_file), "--log", str(log)]
            print(f"[gpu_check] {part.name}: {part.title} (limit {limit:.0f} s)", flush=True)
            with open(log, "a", encoding="utf-8") as fh:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=part_env, cwd=REPO,
                                        start_new_session=True)
            running.append((part, proc, time.perf_counter(), limit, result_file, log))
        for part, proc, t0, limit, result_file, log in running:
            rc = _wait(proc, max(1.0, limit - (time.perf_counter() - t0)))
            seconds = round(time.perf_counter() - t0, 2)
            if result_file.is_file():
                result = json.loads(result_file.read_text(encoding="utf-8"))
            else:
                why = f"timed out after {limit:.0f} s" if rc == 124 else f"the part's process exited with {rc}"
                result = {"status": "failed", "error": f"{why}: {_tail(log.read_text(encoding='utf-8', errors='replace'), 2000)}"}
            result.setdefault("figures", {})
            result.setdefault("checks", {})
            result["wall_s"] = seconds
            result["limit_s"] = round(limit, 1)
            results[part.name] = result
            print(f"[gpu_check] {part.name}: {result['status']} in {seconds:.1f} s", flush=True)

    env_info = (results.get("env") or {}).get("info") or {}
    failed = [n for n, r in results.items() if r["status"] == "failed"]
    report = {
        "schema": 1,
        "issue": 20,
        "dry_run": plan["dry_run"],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_s": round(time.time() - started, 2),
        "budget_s": budget,
        "gpu": env_info.get("gpu"),
        "cuda": env_info.get("cuda"),
        "versions": env_info.get("versions") or {},
        "plan": plan,
        "parts": {p.name: results[p.name] for p in PARTS},
        "failed_parts": failed,
        "passed": not failed,
    }
    write_json(report_path, report)
    print(format_table(report))
    print(f"[gpu_check] report: {report_path}  logs: {logs}")
    if own_work and not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def _headline(name: str, r: dict) -> str:
    f = r.get("figures") or {}
    if r["status"] == "skipped":
        return r.get("reason", "")
    if r["status"] == "failed":
        return (r.get("error") or "").splitlines()[0][:110] if r.get("error") else ""
    if name == "generate_hf":
        parts = [f"{m[0]}: {f[m]['queries_per_s']} q/s {f[m]['tokens_per_s']} tok/s"
                 + (f" {f[m]['peak_allocated_gib']} GiB" if f[m].get("peak_allocated_gib") is not None else "")
                 for m in ("a_single", "b_batched", "c_batched_prefix_reuse") if m in f]
        return "; ".join(parts) + "; (a)=(b)=(c) tokens"
    if name == "generate_vllm":
        d = f.get("d_vllm") or {}
        agree = f.get("d_vs_a") or f.get("d_vs_a_text") or {}
        return (f"d: {d.get('queries_per_s')} q/s {d.get('tokens_per_s')} tok/s, startup {f.get('startup_s')} s; "
                f"agreement with (a) {agree.get('identical')}/{agree.get('of')}")
    if name.startswith("eval_"):
        m = f.get("metrics") or {}
        return f"{f.get('samples_scored')} samples in {f.get('wall_s')} s; " + " ".join(f"{k} {v:.3f}" for k, v in m.items())
    if name.startswith("train_"):
        la = f.get("loss_at_resumed_step") or {}
        return (f"{f.get('global_step')} steps, loss {_num(f.get('first_loss'))} -> {_num(f.get('last_loss'))}; "
                f"resumed at {f.get('resumed_first_step')}: {_num(la.get('original'))} vs {_num(la.get('resumed'))}")
    if name == "build":
        return ", ".join(f"{k} {v}" for k, v in f.items() if k.endswith(("parameters_b", "weights_gib", "load_s")))
    if name == "env":
        i = r.get("info") or {}
        v = i.get("versions") or {}
        return f"torch {v.get('torch')} cuda {i.get('cuda')} transformers {v.get('transformers')} gpu {i.get('gpu')}"
    return ""


def _num(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else str(x)


def format_table(report: dict) -> str:
    mode = "dry run" if report["dry_run"] else "CUDA"
    lines = [f"sceneparser GPU check ({mode}; gpu {report.get('gpu')}; {report['wall_s']:.0f} s of {report['budget_s']:.0f} s)"]
    lines.append(f"{'part':<14} {'status':<8} {'time':>7}  figures")
    for name, r in report["parts"].items():
        secs = r.get("wall_s", r.get("seconds", 0.0)) or 0.0
        lines.append(f"{name:<14} {r['status']:<8} {secs:>6.1f}s  {_headline(name, r)}")
    lines.append("PASSED" if report["passed"] else "FAILED: " + ", ".join(report["failed_parts"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny scale on the CPU, transformers backend; vLLM and DeepSpeed skipped")
    ap.add_argument("--out", default=None, help="report path (default: $OUT/gpu_report.json, else ./gpu_report.json)")
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one, removed at the end)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary work directory")
    ap.add_argument("--scale", choices=sorted(SCALES), default=None,
                    help="model of the generation and eval parts (default 3b; dry run: tiny)")
    ap.add_argument("--train-scale", choices=sorted(SCALES), default=None,
                    help="model of the training parts (default small; dry run: tiny)")
    ap.add_argument("--new-tokens", type=int, default=None, help="fixed output length of the generation parts")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 480; dry run 420, for slow shared CI machines)")
    ap.add_argument("--parts", default=None, help="comma-separated parts to run (the others are reported as skipped)")
    ap.add_argument("--skip-install", action="store_true", help="do not pip install the vllm / train extras")
    # internal: run one part
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--plan", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--log", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:
        plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
        return run_part(args.part, plan, Path(args.result), Path(args.log))
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
