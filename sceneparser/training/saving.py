"""What a training stage writes next to the weights: the processor parts and the training record.

Used by :mod:`sceneparser.training.stage` (a ZeRO-3 stage, whose weights the Trainer writes) and
by :mod:`sceneparser.training.lora` (an adapter directory: peft writes the adapter, this the rest).
"""

from __future__ import annotations

import json
from pathlib import Path

from sceneparser.model.loading import EXTRA_FILE

#: the resolved config of a stage, saved in its output directory (an adapter's base is rebuilt from it)
TRAINING_CONFIG_FILE = "training_config.yaml"


def save_processor_parts(processor, output_dir: Path, extra: dict | None = None) -> None:
    """The non-weight part of a model directory (what ``save_model_dir`` adds to the weights)."""
    processor.save_pretrained(output_dir)
    template = getattr(processor.tokenizer, "chat_template", None)
    if template and not (output_dir / "chat_template.jinja").is_file():
        (output_dir / "chat_template.jinja").write_text(template, encoding="utf-8")
    if extra is not None:
        (output_dir / EXTRA_FILE).write_text(json.dumps(extra, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


__all__ = ["TRAINING_CONFIG_FILE", "save_processor_parts"]
