"""A checkpoint folder ready for an inference server (``vllm serve DIR``, SGLang).

:func:`export_for_serving` writes a folder that any server loading it the plain transformers-5 way
decodes correctly:

* the weights (``*.safetensors`` and their index), ``config.json`` and ``preprocessor_config.json``
  linked (or copied with ``copy_weights=True``) from the source;
* the tokenizer converted by :func:`sceneparser.model.tokenizer.load_tokenizer`: one
  ``tokenizer.json`` with the checkpoint's original ids (``<k>`` = ``150643 + k`` on the released
  vocabulary, ``<|image_pad|>`` = 151655), where a released Rex-Omni-layout checkpoint loaded
  directly by transformers 5 would renumber them past the model's embedding rows;
* ``generation_config.json`` with the reference sampling settings (greedy: ``top_k`` 1,
  ``top_p`` 0.8, ``repetition_penalty`` 1.05, at most 2048 new tokens, stop at ``<|im_end|>``),
  which vLLM uses as the default of every request;
* ``sceneparser_serving.json``: the source, the checked ids and the server command lines.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sceneparser import io as atomic
from sceneparser.errors import InputError, ModelLoadError
from sceneparser.model.loading import resolve_model_path
from sceneparser.model.tokenizer import load_tokenizer

__all__ = ["export_for_serving", "serve_commands", "REFERENCE_GENERATION"]

#: the reference decoding (docs/reference.md, *decoding*) as generation_config.json fields
REFERENCE_GENERATION = {"do_sample": False, "top_k": 1, "top_p": 0.8, "temperature": 0.0,
                        "repetition_penalty": 1.05, "max_new_tokens": 2048}
_COPIED = ("config.json", "preprocessor_config.json", "model.safetensors.index.json", "chat_template.jinja",
           "chat_template.json", "sceneparser.json")


def serve_commands(out: str | os.PathLike, name: str = "sceneparser", *, min_pixels: int = 12544,
                   max_pixels: int = 2007040) -> dict[str, str]:
    """The ``vllm serve`` and SGLang command lines for an exported folder (reference engine settings)."""
    mm = f'{{"min_pixels": {min_pixels}, "max_pixels": {max_pixels}}}'
    return {
        "vllm": (f"vllm serve {out} --served-model-name {name} --max-model-len 4096 "
                 f"--limit-mm-per-prompt '{{\"image\": 10, \"video\": 10}}' --mm-processor-kwargs '{mm}' "
                 "--enable-prefix-caching --generation-config auto"),
        "sglang": f"python -m sglang.launch_server --model-path {out} --served-model-name {name} --context-length 4096",
    }


def export_for_serving(source: str | os.PathLike | None, out: str | os.PathLike, *, copy_weights: bool = False,
                       overwrite: bool = False) -> dict:
    """Write the serving folder ``out`` for the model ``source`` (directory, hub id or ``None`` for the
    shipped default model); returns what :file:`sceneparser_serving.json` records."""
    src = resolve_model_path(source)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out} is not empty; choose a new folder or pass --overwrite")
        shutil.rmtree(out)
    weights = sorted(src.glob("*.safetensors"))
    if not weights:
        raise ModelLoadError(f"{src} has no *.safetensors weights")
    if not (src / "config.json").is_file():
        raise ModelLoadError(f"{src} has no config.json")
    out.mkdir(parents=True, exist_ok=True)
    for f in weights:
        if copy_weights:
            shutil.copy2(f, out / f.name)
        else:
            (out / f.name).symlink_to(f.resolve())
    for name in _COPIED:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    tok = load_tokenizer(src)
    tok.save_pretrained(str(out))
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<0>", "<999>", "<|image_pad|>", "<|im_end|>", "<|endoftext|>")}
    stops = [i for i in (ids["<|im_end|>"], ids["<|endoftext|>"]) if isinstance(i, int)]
    generation = dict(REFERENCE_GENERATION, eos_token_id=stops, pad_token_id=ids["<|endoftext|>"])
    atomic.write_json(out / "generation_config.json", generation)
    pixels = {}
    if (out / "preprocessor_config.json").is_file():
        cfg = json.loads((out / "preprocessor_config.json").read_text(encoding="utf-8"))
        pixels = {k: cfg[k] for k in ("min_pixels", "max_pixels") if isinstance(cfg.get(k), int)}
    record = {"source": str(src), "token_ids": ids, "weights": "copied" if copy_weights else "linked",
              "commands": serve_commands(out, **pixels)}
    atomic.write_json(out / "sceneparser_serving.json", record)
    return record
