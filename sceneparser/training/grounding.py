"""An auxiliary grounding loss for training a model from scratch: the class under every image token.

A from-scratch model first learns the JSON and the text prior, and while doing so it learns to
ignore the image (the image tokens carry nothing it can use yet); afterwards no gradient is left
to teach the vision tower what the objects look like (docs/default_model.md). This loss breaks
that circle: a linear head on the merger output (the image tokens the language model sees)
predicts, for every token, the class of the object that covers the token's centre (0 =
background; the smallest box wins where boxes overlap). The head is training-only scaffolding:
it is not part of the saved model, which stays a plain ``Qwen2_5_VLForConditionalGeneration``.
Off by default (``train.token_class_loss_weight: 0``); the reference has no such loss.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

BACKGROUND = 0


def token_class_map(
    objects: Iterable[Mapping[str, Any]],
    width: int,
    height: int,
    grid_h: int,
    grid_w: int,
    class_index: Mapping[str, int],
    name_key: Callable[[Any], Any] | None = None,
) -> list[int]:
    """Row-major class ids of a ``grid_h`` x ``grid_w`` token grid over a ``width`` x ``height`` image.

    ``objects`` are annotation objects (``name`` and pixel ``bbox`` [x0, y0, x1, y1]); objects
    without a usable box or with a name missing from ``class_index`` are left out. ``name_key``
    maps a name to its ``class_index`` key (e.g. lower-casing for case-insensitive categories).
    """
    best_area = [float("inf")] * (grid_h * grid_w)
    labels = [BACKGROUND] * (grid_h * grid_w)
    for obj in objects:
        name = obj.get("name")
        cls = class_index.get(name_key(name) if name_key is not None else name)
        box = obj.get("bbox")
        if cls is None or not isinstance(box, (list, tuple)) or len(box) != 4:
            continue
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            continue
        if not (x1 >= x0 and y1 >= y0):
            continue
        area = (x1 - x0) * (y1 - y0)
        for r in range(grid_h):
            cy = (r + 0.5) * height / grid_h
            if not y0 <= cy <= y1:
                continue
            for c in range(grid_w):
                cx = (c + 0.5) * width / grid_w
                k = r * grid_w + c
                if x0 <= cx <= x1 and area < best_area[k]:
                    best_area[k] = area
                    labels[k] = cls
    return labels


def class_vocabulary(names: Iterable[str]) -> dict[str, int]:
    """``{name: id}`` with ids 1.. in sorted name order (0 is the background)."""
    return {name: i + 1 for i, name in enumerate(sorted(set(names)))}


class TokenClassHead:
    """The linear head and the hook that captures the merger output of each forward pass.

    ``attach(model)`` hooks the vision tower; after a forward, ``loss(labels)`` is the mean
    cross-entropy of the captured image tokens against ``labels`` (one id per merged token,
    in the order the model consumes them).
    """

    def __init__(self, hidden_size: int, num_classes: int, seed: int = 0):
        import torch
        from torch import nn

        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            self.linear = nn.Linear(hidden_size, num_classes + 1)
        finally:
            torch.random.set_rng_state(state)
        self._captured = None
        self._handle = None

    def parameters(self):
        return self.linear.parameters()

    def attach(self, model) -> None:
        from sceneparser.training.trainer import find_vision_modules

        tower, _ = find_vision_modules(model)
        if tower is None:
            raise ValueError("the model has no vision tower to attach the token-class head to")
        self._handle = tower.register_forward_hook(self._capture)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _capture(self, module, inputs, output) -> None:
        merged = getattr(output, "pooler_output", None)
        self._captured = merged if merged is not None else (output[0] if isinstance(output, (tuple, list)) else output)

    def loss(self, labels: Sequence[int] | Any):
        import torch

        features, self._captured = self._captured, None
        if features is None:
            raise RuntimeError("no image features were captured: was the head attached and the model run?")
        labels = torch.as_tensor(labels, device=features.device)
        if features.shape[0] != labels.shape[0]:
            raise ValueError(f"{features.shape[0]} image tokens but {labels.shape[0]} token-class labels")
        self.linear.to(features.device)
        logits = self.linear(features.to(self.linear.weight.dtype))
        return torch.nn.functional.cross_entropy(logits.float(), labels)

    def state_dict(self) -> dict:
        return self.linear.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.linear.load_state_dict(state)


__all__ = ["BACKGROUND", "TokenClassHead", "class_vocabulary", "token_class_map"]
