"""Save and load a complete SceneParser model directory.

A model directory holds what transformers and vLLM expect of a Qwen2.5-VL checkpoint:

* ``config.json`` (+ ``generation_config.json``) and the weights (``model.safetensors`` or a sharded
  ``model.safetensors.index.json`` with its shards);
* the tokenizer: ``tokenizer.json`` + ``tokenizer_config.json`` (our models), or the Rex-Omni
  layout ``vocab.json`` + ``merges.txt`` + ``tokenizer_config.json`` (released checkpoints; see
  :mod:`sceneparser.model.tokenizer`);
* ``chat_template.jinja`` and ``preprocessor_config.json``;
* optionally ``sceneparser.json`` with extra metadata (training stage, data, ...).

We save the parts ourselves: ``Qwen2_5_VLProcessor.save_pretrained`` and ``AutoProcessor`` need a
torchvision video processor (docs/reference.md, *resize*).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from sceneparser.errors import InputError, ModelLoadError
from sceneparser.model.processor import ImageProcessor, SceneParserProcessor
from sceneparser.model.tokenizer import load_tokenizer, save_tokenizer

EXTRA_FILE = "sceneparser.json"
#: set (to anything but "" or "0") by ``sceneparser --verbose``: show the dependencies' own output
VERBOSE_ENV = "SCENEPARSER_VERBOSE"


def verbose() -> bool:
    """Whether third-party progress bars and warnings should be shown (``--verbose``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet_dependencies():
    """Inside: no transformers progress bars ("Loading weights"), info logs or deprecation
    warnings from dependencies, unless :func:`verbose`. Errors still surface; the settings are
    restored on exit."""
    if verbose():
        yield
        return
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning, UserWarning):
                warnings.simplefilter("ignore", category)
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def resolve_device(device: Any = None):
    """``torch.device``: the given one, else cuda, else mps, else cpu."""
    import torch

    if device is not None and str(device) != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise InputError(f"unknown device {device!r} (use cpu, cuda, cuda:N or mps)") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError("device 'cuda' requested but CUDA is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def canonical_dtype(dtype: Any) -> str | None:
    """The one spelling of a dtype every backend gets: ``float32``, ``bfloat16``, ``float16``, or
    ``None`` for automatic (``None``/``"auto"``). Aliases (``fp32``, ``bf16``, ``half``, ``torch.float16``,
    a ``torch.dtype``) are accepted; anything else is an :class:`InputError`."""
    if dtype is None or str(dtype).lower() == "auto":
        return None
    name = _DTYPES.get(str(dtype).lower().replace("torch.", ""))
    if name is None:
        raise InputError(f"unknown dtype {dtype!r} (use float32, bfloat16 or float16, or auto)")
    return name


def resolve_dtype(dtype: Any, device) -> Any:
    """``torch.dtype``: the given one, else bfloat16 on CUDA and float32 elsewhere."""
    import torch

    name = canonical_dtype(dtype)
    if name is None:
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return getattr(torch, name)


def default_model_dir() -> Path:
    """Where the shipped default model lives: ``sceneparser/assets/default_model/``."""
    return Path(__file__).resolve().parent.parent / "assets" / "default_model"


def model_pixel_range(model_dir: str | os.PathLike, fallback: tuple[int, int]) -> tuple[int, int]:
    """``(min_pixels, max_pixels)`` of a model directory's ``preprocessor_config.json``, else ``fallback``."""
    path = Path(model_dir) / "preprocessor_config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        lo = cfg.get("min_pixels", (cfg.get("size") or {}).get("shortest_edge"))
        hi = cfg.get("max_pixels", (cfg.get("size") or {}).get("longest_edge"))
        if isinstance(lo, int) and isinstance(hi, int) and 0 < lo <= hi:
            return lo, hi
    except (OSError, ValueError, AttributeError):
        pass
    return fallback


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not text.startswith((".", "~"))
        and "\\" not in text
        and all(c.isalnum() or c in "-_." for part in parts for c in part)
    )


def resolve_model_path(path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local model directory for ``path``.

    * ``None``: the shipped default model (``sceneparser/assets/default_model/``);
    * an existing directory: itself;
    * a hub id such as ``SceneParser/SceneParser-model``: its snapshot in huggingface_hub's cache
      (``cache_dir``, default the HF cache), downloaded when online. Offline and not cached gives
      a :class:`ModelLoadError` saying so.
    """
    if path is None:
        d = default_model_dir()
        if d.is_dir() and (d / "config.json").is_file():
            return d
        raise ModelLoadError(
            f"no default model is installed (expected {d}); the package ships one there, so this "
            "installation is incomplete (reinstall sceneparser). Or pass a model directory or hub id, "
            "e.g. --model PATH or "
            "SceneParser.from_pretrained('path/to/model')"
        )
    p = Path(os.path.expanduser(str(path)))
    if p.exists():
        return p
    text = str(path)
    if not _looks_like_hub_id(text):
        raise ModelLoadError(f"model directory not found: {text}")
    return _hub_snapshot(text, cache_dir)


def _hub_snapshot(repo_id: str, cache_dir) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ModelLoadError(f"{repo_id!r} is not a local directory and huggingface_hub is not installed") from exc
    cache = str(cache_dir) if cache_dir is not None else None
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
    except Exception:
        pass  # not cached (completely): try the network below
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline:
        raise ModelLoadError(
            f"model {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            "download it on a machine with network access (huggingface-cli download "
            f"{repo_id}) or pass a local model directory"
        )
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache))
    except Exception as exc:
        raise ModelLoadError(
            f"cannot download model {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
            "check the name and your network, or pass a local model directory"
        ) from exc


def missing_files(path: str | os.PathLike) -> list[str]:
    """Names of required files absent from a model directory (empty list: complete)."""
    path = Path(path)
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            shards = []
            missing.append("model.safetensors.index.json (unreadable)")
        missing += [s for s in shards if not (path / s).is_file()]
    elif not (path / "model.safetensors").is_file():
        missing.append("model.safetensors (or model.safetensors.index.json with its shards)")
    has_fast = (path / "tokenizer.json").is_file()
    has_bpe = (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
    if not (has_fast or has_bpe):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if not (path / "tokenizer_config.json").is_file():
        missing.append("tokenizer_config.json")
    if not (path / "preprocessor_config.json").is_file():
        missing.append("preprocessor_config.json")
    return missing


def save_processor_files(processor, path: str | os.PathLike) -> Path:
    """Write the tokenizer, chat template and image processor of ``processor`` into ``path``.

    With the weights and ``config.json`` beside them (a training ``checkpoint-N`` directory)
    this makes a complete model directory.
    """

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_tokenizer(processor.tokenizer, path)  # reloadable even with Rex-Omni's reused ids
    if not (path / "chat_template.jinja").is_file() and processor.tokenizer.chat_template:
        (path / "chat_template.jinja").write_text(processor.tokenizer.chat_template, encoding="utf-8")
    processor.image_processor.save_pretrained(path)
    return path


def save_model_dir(model, processor, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write a complete model directory (see module docstring) and return its path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with quiet_dependencies():  # no "Writing model shards" bar
        model.save_pretrained(str(path), safe_serialization=True)
    save_processor_files(processor, path)
    if extra is not None:
        (path / EXTRA_FILE).write_text(json.dumps(extra, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


def read_extra(path: str | os.PathLike) -> dict:
    f = Path(path) / EXTRA_FILE
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def load_processor(path: str | os.PathLike, config=None):
    """The :class:`SceneParserProcessor` of a model directory, configured from its model config."""

    path = Path(path)
    if config is None:
        config = load_config(path)
    in_channels = int(getattr(getattr(config, "vision_config", None), "in_channels", 3) or 3)
    if in_channels not in (3, 5):
        raise ModelLoadError(f"{path}: vision_config.in_channels={in_channels} is not supported (3 or 5)")
    image_processor = ImageProcessor.from_pretrained(path, coord_channels=in_channels == 5)
    tokenizer = load_tokenizer(path)
    processor = SceneParserProcessor(image_processor, tokenizer)
    vocab = int(getattr(config.get_text_config(), "vocab_size", 0) or 0)
    top = max(tokenizer.get_vocab().values())
    if vocab and top >= vocab:
        raise ModelLoadError(
            f"{path}: the tokenizer has ids up to {top} but the model's embedding table has {vocab} rows; "
            "the tokenizer and the weights do not belong together (or the coordinate-token ids were renumbered)"
        )
    return processor


def load_config(path: str | os.PathLike):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path))
    except Exception as exc:
        raise ModelLoadError(f"cannot read the model config in {path}: {exc}") from exc


def load_model_dir(path: str | os.PathLike, device=None, dtype=None, *, attn_implementation: str = "sdpa",
                   strict: bool = True):
    """``(model, processor)`` from a model directory; the model is in eval mode on ``device``.

    Raises :class:`ModelLoadError` naming every missing file, or the problem with a corrupt one,
    and (``strict``, the default) every weight the model expects but the files lack, every weight
    in the files the model has no place for and every shape mismatch, key by key — a randomly
    initialised weight would otherwise pass silently.
    """
    from transformers import Qwen2_5_VLForConditionalGeneration

    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model directory not found: {path}")
    if not path.is_dir():
        raise ModelLoadError(f"not a model directory: {path}")
    missing = missing_files(path)
    if missing:
        raise ModelLoadError(f"model directory {path} is incomplete; missing: {', '.join(missing)}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    with quiet_dependencies():
        config = load_config(path)
        processor = load_processor(path, config)
        try:
            model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                str(path), config=config, dtype=dt, attn_implementation=attn_implementation, output_loading_info=True
            )
        except Exception as exc:
            raise ModelLoadError(f"cannot load the weights in {path}: {type(exc).__name__}: {exc}") from exc
    if strict:
        check_loading_info(path, info)
    model.to(dev)
    model.eval()
    return model, processor


def check_loading_info(path, info: dict) -> None:
    """Refuse weights that do not fit the model, naming each key (at most 20 per kind shown)."""
    problems = []
    for kind, label in (("missing_keys", "missing from the files"), ("unexpected_keys", "not used by the model"),
                        ("mismatched_keys", "with the wrong shape")):
        keys = [k if isinstance(k, str) else f"{k[0]} {tuple(k[1])} vs {tuple(k[2])}" for k in info.get(kind) or ()]
        if keys:
            shown = "\n    ".join(sorted(keys)[:20]) + (f"\n    ... {len(keys) - 20} more" if len(keys) > 20 else "")
            problems.append(f"{len(keys)} weight(s) {label}:\n    {shown}")
    if problems:
        raise ModelLoadError(f"the weights in {path} do not fit the model config:\n  " + "\n  ".join(problems))


__all__ = [
    "check_loading_info",
    "default_model_dir",
    "quiet_dependencies",
    "verbose",
    "model_pixel_range",
    "save_processor_files",
    "load_model_dir",
    "resolve_model_path",
    "load_processor",
    "missing_files",
    "read_extra",
    "resolve_device",
    "resolve_dtype",
    "save_model_dir",
]
