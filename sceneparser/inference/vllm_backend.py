"""vLLM generation backend (optional extra ``sceneparser[vllm]``; GPU).

Implements the :class:`~sceneparser.inference.types.Backend` contract like the transformers
backend: ``generate(requests) -> list[GenerationOutput]``. ``vllm`` is imported only when this
backend is constructed, so nothing else in the package needs it.

Reference settings (docs/reference.md, *decoding*):

* engine: ``LLM(model=P, limit_mm_per_prompt={"image": 10, "video": 10}, max_model_len=4096,
  gpu_memory_utilization=0.8, tensor_parallel_size=1, trust_remote_code=True)``, dtype "auto";
* sampling: ``max_tokens=max_new_tokens, temperature=0.0, top_k=1, top_p=0.8,
  repetition_penalty=1.05, skip_special_tokens=False, stop=["<|im_end|>", "<0><0><0><0>"]``;
* prompt: the reference ChatML text (``sceneparser.prompts.chat_text(question, "inference")``);
  the image is resized with ``smart_resize(min_pixels, max_pixels)`` and PIL bicubic before it
  is handed to vLLM, exactly as qwen-vl-utils does for the reference, and vLLM's processor gets
  the same min/max pixels (so its own smart_resize is the identity).

Two deliberate differences:

* **Tokenizer.** The reference asks vLLM for ``tokenizer_mode="slow"``, which only gives the
  checkpoint's ids (``<k>`` = 150643 + k) with transformers 4.x. We hand vLLM the tokenizer from
  :func:`sceneparser.model.tokenizer.load_tokenizer` (the same ids with any transformers),
  saved once into a cache directory, with ``tokenizer_mode="auto"``.
* **Prefix caching on** (``enable_prefix_caching=True``): all categories of an image share the
  system + image prefix. It does not change greedy outputs beyond vLLM's usual batch numerics
  (docs/reference.md, *known-bugs*).

Under ``torchrun`` each rank gets one whole engine on GPU ``LOCAL_RANK`` (data parallel): the
torchrun variables are hidden from vLLM while it starts, so it builds its own one-GPU world.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

from PIL import Image

from sceneparser import prompts
from sceneparser.errors import ModelLoadError, require
from sceneparser.images import to_rgb
from sceneparser.inference.types import Backend, GenerationOutput, GenerationRequest, GenerationSettings
from sceneparser.model import tokenizer as tok_mod
from sceneparser.model.loading import canonical_dtype, resolve_model_path
from sceneparser.model.processor import smart_resize

STOP_STRINGS = ("<|im_end|>", "<0><0><0><0>")
LIMIT_MM_PER_PROMPT = {"image": 10, "video": 10}
_TORCHRUN_VARS = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
    "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
)


def sampling_kwargs(max_new_tokens: int = 2048) -> dict:
    """The reference ``SamplingParams`` arguments (docs/reference.md, *decoding*)."""
    return {
        "max_tokens": int(max_new_tokens),
        "temperature": 0.0,
        "top_k": 1,
        "top_p": 0.8,
        "repetition_penalty": 1.05,
        "skip_special_tokens": False,
        "stop": list(STOP_STRINGS),
    }


def engine_kwargs(
    model: str,
    tokenizer: str,
    *,
    max_model_len: int = 4096,
    gpu_memory_utilization: float = 0.8,
    tensor_parallel_size: int = 1,
    min_pixels: int = 12544,
    max_pixels: int = 2007040,
    dtype: str | None = None,
    enable_prefix_caching: bool = True,
    seed: int | None = None,
    **extra: Any,
) -> dict:
    """The ``vllm.LLM`` arguments: the reference engine plus our tokenizer and prefix caching."""
    kw = {
        "model": model,
        "tokenizer": tokenizer,
        "tokenizer_mode": "auto",
        "limit_mm_per_prompt": dict(LIMIT_MM_PER_PROMPT),
        "max_model_len": int(max_model_len),
        "gpu_memory_utilization": float(gpu_memory_utilization),
        "tensor_parallel_size": int(tensor_parallel_size),
        "trust_remote_code": True,
        "dtype": dtype or "auto",
        "enable_prefix_caching": bool(enable_prefix_caching),
        "mm_processor_kwargs": {"min_pixels": int(min_pixels), "max_pixels": int(max_pixels)},
    }
    if seed is not None:
        kw["seed"] = int(seed)
    kw.update(extra)
    return kw


def prepare_input(image: Any, question: str, *, min_pixels: int = 12544, max_pixels: int = 2007040,
                  layout: str = "inference") -> dict:
    """One vLLM prompt dict: reference ChatML text plus the smart-resized RGB image."""
    img = to_rgb(image)
    w, h = img.size
    rh, rw = smart_resize(h, w, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
    if (rw, rh) != (w, h):
        img = img.resize((rw, rh), Image.Resampling.BICUBIC)
    return {"prompt": prompts.chat_text(question, layout=layout), "multi_modal_data": {"image": img}}


#: files whose content defines a checkpoint's tokenizer (the converted-tokenizer cache is keyed by them)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "added_tokens.json",
    "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
)


def tokenizer_fingerprint(model_dir: str | os.PathLike) -> str:
    """A hash of the tokenizer files' names and contents (not of the path): a checkpoint that
    changes in place gets a new converted tokenizer, a copy elsewhere reuses the old one."""
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        f = Path(model_dir) / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def tokenizer_dir(model_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """A directory vLLM can load our checkpoint-compatible tokenizer from.

    ``model_dir`` is a local directory (hub ids are resolved to their snapshot before, see
    :class:`VLLMBackend`). Our own model directories already ship a correct ``tokenizer.json``
    and are returned as is; a Rex-Omni-layout checkpoint (reused ids, no usable
    ``tokenizer.json``) is converted once by :func:`sceneparser.model.tokenizer.load_tokenizer` and
    saved under the cache, keyed by the content of its tokenizer files.
    """
    path = Path(model_dir)
    if tok_mod.detect_layout(path) not in ("reused-ids", "vocab-merges"):
        return str(path)
    root = Path(cache_dir) if cache_dir is not None else tok_mod.default_cache_dir()
    out = root / f"vllm-{tokenizer_fingerprint(path)}"
    if not (out / "tokenizer.json").is_file():
        tok = tok_mod.load_tokenizer(path)
        tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
        tok.save_pretrained(tmp)
        if out.exists():  # another process won the race; keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, out)
    return str(out)


@contextlib.contextmanager
def _single_gpu_world(local_rank: int | None) -> Iterator[None]:
    """Hide torchrun's variables (and pin one GPU) while vLLM builds its own one-GPU world."""
    if local_rank is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in (*_TORCHRUN_VARS, "CUDA_VISIBLE_DEVICES")}
    try:
        for k in _TORCHRUN_VARS:
            os.environ.pop(k, None)
        visible = saved["CUDA_VISIBLE_DEVICES"]
        devices = visible.split(",") if visible else None
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[local_rank] if devices and local_rank < len(devices) else str(local_rank)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class VLLMBackend(Backend):
    """Batched generation with vLLM and the reference engine/sampling settings."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        max_new_tokens: int = 2048,
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.8,
        tensor_parallel_size: int = 1,
        min_pixels: int = 12544,
        max_pixels: int = 2007040,
        dtype: str | None = None,
        device: str | None = None,
        local_rank: int | None = None,
        enable_prefix_caching: bool = True,
        seed: int | None = None,
        **engine_extra: Any,
    ):
        vllm = require("vllm", "vllm")
        if device is not None and str(device).startswith("cpu"):
            raise ModelLoadError("the vLLM backend needs a GPU; use --backend hf on CPU")
        if device is not None and local_rank is None and str(device).startswith("cuda:"):
            local_rank = int(str(device).split(":", 1)[1])
        self.min_pixels = int(min_pixels)
        self.max_pixels = int(max_pixels)
        # a hub id is resolved to its local snapshot first, so it gets the converted tokenizer too
        # (vLLM would otherwise load the checkpoint's own tokenizer, whose ids are wrong on transformers 5)
        local = resolve_model_path(model_path)
        kwargs = engine_kwargs(
            str(local),
            tokenizer_dir(local),
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            dtype=canonical_dtype(dtype),
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
            **engine_extra,
        )
        try:
            with _single_gpu_world(local_rank):
                self.llm = vllm.LLM(**kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"vLLM could not load {model_path}: {exc}") from exc
        self._sampling_params = vllm.SamplingParams
        self.settings = GenerationSettings(
            max_new_tokens=int(max_new_tokens), max_context=int(max_model_len), stop_strings=STOP_STRINGS[1:]
        )

    def sampling_for(self, request: GenerationRequest) -> dict:
        """The ``SamplingParams`` arguments of one request: the reference's, with its own cap and,
        when it samples (``temperature`` > 0), its temperature, ``top_p`` and seed."""
        cap = min(request.max_new_tokens or self.settings.max_new_tokens, self.settings.max_new_tokens)
        kw = sampling_kwargs(cap)
        if request.temperature > 0:
            kw.pop("top_k")
            kw.update(temperature=float(request.temperature), top_p=float(request.top_p))
            if request.seed is not None:
                kw["seed"] = int(request.seed)
        return kw

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = False) -> list[GenerationOutput]:
        """One output per request (stop strings excluded, special tokens kept). ``on_text`` gets the
        whole answer at once: the offline engine does not stream."""
        if not requests:
            return []
        inputs = [
            prepare_input(r.image, r.question, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
            for r in requests
        ]
        params = [self._sampling_params(**self.sampling_for(r)) for r in requests]
        outputs = [_output(o) for o in self.llm.generate(inputs, params, use_tqdm=progress)]
        for r, o in zip(requests, outputs):
            if r.on_text is not None and o.text:
                try:
                    r.on_text(o.text)
                except Exception:  # noqa: BLE001 - the consumer is gone
                    pass
        return outputs


def _output(result: Any) -> GenerationOutput:
    """A vLLM ``RequestOutput`` as a :class:`GenerationOutput` (``finish_reason`` ``stop`` or ``length``)."""
    first = result.outputs[0]
    metrics = getattr(result, "metrics", None)
    return GenerationOutput(
        text=first.text,
        token_ids=list(first.token_ids or ()),
        num_prompt_tokens=len(result.prompt_token_ids or ()),
        finish_reason=first.finish_reason or "stop",
        decode_s=float(getattr(metrics, "decode_time", 0.0) or 0.0) if metrics is not None else 0.0,
    )
