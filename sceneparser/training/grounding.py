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

import torch
from torch import nn

from sceneparser.training.params import find_vision_modules
from sceneparser.training.roles import coordinate_roles

BACKGROUND = 0


def _covering_objects(
    objects: Iterable[Mapping[str, Any]], width: int, height: int, grid_h: int, grid_w: int,
    keep: Callable[[Mapping[str, Any]], bool] | None = None,
) -> list[tuple[Mapping[str, Any], tuple[float, float, float, float]] | None]:
    """Row-major, for every token of the grid: the object whose box covers the token centre, or None.

    Where boxes overlap the smallest box wins. Objects without a usable pixel box
    ``[x0, y0, x1, y1]`` (or refused by ``keep``) are left out.
    """
    best_area = [float("inf")] * (grid_h * grid_w)
    cover: list[tuple[Mapping[str, Any], tuple[float, float, float, float]] | None] = [None] * (grid_h * grid_w)
    for obj in objects:
        if keep is not None and not keep(obj):
            continue
        box = obj.get("bbox")
        if not isinstance(box, (list, tuple)) or len(box) != 4:
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
                    cover[k] = (obj, (x0, y0, x1, y1))
    return cover


def _class_of(class_index: Mapping[str, int], name_key: Callable[[Any], Any] | None):
    def cls(obj: Mapping[str, Any]) -> int | None:
        name = obj.get("name")
        return class_index.get(name_key(name) if name_key is not None else name)

    return cls


def _fractions(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return (min(1.0, max(0.0, x0 / width)), min(1.0, max(0.0, y0 / height)),
            min(1.0, max(0.0, x1 / width)), min(1.0, max(0.0, y1 / height)))


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
    return token_targets(objects, width, height, grid_h, grid_w, class_index, name_key)[0]


#: the ``token_box_map`` entry of a token that no object covers (masked out of the box loss)
NO_BOX = (-1.0, -1.0, -1.0, -1.0)


def token_box_map(
    objects: Iterable[Mapping[str, Any]], width: int, height: int, grid_h: int, grid_w: int
) -> list[tuple[float, float, float, float]]:
    """Row-major, for every token: the box of the object covering its centre, as fractions of the image.

    The same covering rule as :func:`token_class_map` (the smallest box wins), so every token of
    an object carries that object's whole box ``(x0/W, y0/H, x1/W, y1/H)`` -- the dense, FCOS-style
    target that lets the language model read a box off *any* token of the object it attends to.
    Background tokens get :data:`NO_BOX`. Every object with a usable box counts, whatever its name.
    """
    cover = _covering_objects(objects, width, height, grid_h, grid_w)
    return [NO_BOX if c is None else _fractions(c[1], width, height) for c in cover]


def token_targets(
    objects: Iterable[Mapping[str, Any]],
    width: int,
    height: int,
    grid_h: int,
    grid_w: int,
    class_index: Mapping[str, int],
    name_key: Callable[[Any], Any] | None = None,
) -> tuple[list[int], list[tuple[float, float, float, float]]]:
    """``(classes, boxes)`` of every token from one covering pass (what the training dataset uses).

    Only objects whose class is in ``class_index`` count, for both maps, so a token has a box
    exactly when it has a class: the two auxiliary targets always describe the same object.
    """
    cls = _class_of(class_index, name_key)
    cover = _covering_objects(objects, width, height, grid_h, grid_w, keep=lambda o: cls(o) is not None)
    classes = [BACKGROUND if c is None else cls(c[0]) for c in cover]
    boxes = [NO_BOX if c is None else _fractions(c[1], width, height) for c in cover]
    return classes, boxes


def class_vocabulary(names: Iterable[str]) -> dict[str, int]:
    """``{name: id}`` with ids 1.. in sorted name order (0 is the background)."""
    return {name: i + 1 for i, name in enumerate(sorted(set(names)))}


class TokenClassHead:
    """The linear heads and the hook that capture the merger output of each forward pass.

    ``attach(model)`` hooks the vision tower; after a forward, ``loss(labels)`` is the mean
    cross-entropy of the captured image tokens against ``labels`` (one id per merged token,
    in the order the model consumes them). With ``boxes=True`` a second linear head regresses the
    box of the object under every token (:func:`token_box_map`), and ``losses(labels, boxes)``
    returns both losses from the same captured features.
    """

    def __init__(self, hidden_size: int, num_classes: int, seed: int = 0, boxes: bool = False):
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            self.linear = nn.Linear(hidden_size, num_classes + 1)
            self.box = nn.Linear(hidden_size, 4) if boxes else None
        finally:
            torch.random.set_rng_state(state)
        self._captured = None
        self._handle = None

    def parameters(self):
        params = list(self.linear.parameters())
        if self.box is not None:
            params += list(self.box.parameters())
        return params

    def to(self, device) -> "TokenClassHead":
        self.linear.to(device)
        if self.box is not None:
            self.box.to(device)
        return self

    def attach(self, model) -> None:
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

    def clear(self) -> None:
        """Forget the captured features (after a forward whose loss is not wanted, e.g. evaluation)."""
        self._captured = None

    def losses(self, labels: Sequence[int] | Any, boxes: Any = None):
        """``(class_loss, box_loss)`` of the last forward; ``box_loss`` is None without ``boxes``.

        ``boxes``: ``(tokens, 4)`` fractions of the image, :data:`NO_BOX` rows for the background.
        The box loss is the mean L1 error over the covered tokens' four coordinates (0 when no
        token of the batch is covered).
        """
        features, self._captured = self._captured, None
        if features is None:
            raise RuntimeError("no image features were captured: was the head attached and the model run?")
        labels = torch.as_tensor(labels, device=features.device)
        if features.shape[0] != labels.shape[0]:
            raise ValueError(f"{features.shape[0]} image tokens but {labels.shape[0]} token-class labels")
        self.to(features.device)
        feats = features.to(self.linear.weight.dtype)
        class_loss = torch.nn.functional.cross_entropy(self.linear(feats).float(), labels)
        if boxes is None:
            return class_loss, None
        if self.box is None:
            raise ValueError("box targets were given but the head was built without boxes=True")
        boxes = torch.as_tensor(boxes, device=features.device, dtype=torch.float32)
        if boxes.shape != (features.shape[0], 4):
            raise ValueError(f"{features.shape[0]} image tokens but token boxes of shape {tuple(boxes.shape)}")
        covered = boxes[:, 0] >= 0
        if not bool(covered.any()):
            return class_loss, feats.sum() * 0.0
        pred = self.box(feats[covered]).float()
        return class_loss, (pred - boxes[covered]).abs().mean()

    def loss(self, labels: Sequence[int] | Any):
        return self.losses(labels)[0]

    def state_dict(self) -> dict:
        state = dict(self.linear.state_dict())
        if self.box is not None:
            state.update({f"box.{k}": v for k, v in self.box.state_dict().items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        box_state = {k[4:]: v for k, v in state.items() if k.startswith("box.")}
        self.linear.load_state_dict({k: v for k, v in state.items() if not k.startswith("box.")})
        if self.box is not None:
            self.box.load_state_dict(box_state)
        elif box_state:
            raise ValueError("the saved token head has a box head, this one has none")


def _cells_in_box(x0: float, y0: float, x1: float, y1: float, gh: int, gw: int) -> list[int]:
    """Row-major indices of the grid cells whose centre lies inside the box (image fractions)."""
    return [
        r * gw + c
        for r in range(gh)
        for c in range(gw)
        if x0 <= (c + 0.5) / gw <= x1 and y0 <= (r + 0.5) / gh <= y1
    ]


def _cell_at(x: float, y: float, gh: int, gw: int) -> int:
    """Row-major index of the grid cell that holds the point (image fractions)."""
    return min(gh - 1, max(0, int(y * gh))) * gw + min(gw - 1, max(0, int(x * gw)))


def attention_targets(
    input_ids, labels, image_grid_thw, *, image_token_id: int, first_coord_id: int, merge_size: int, tokenizer,
    num_bins: int = 1000, parts: bool = False,
) -> list[tuple[int, int, list[int]]]:
    """Attention-supervision targets of a batch: ``[(sample, query position, key positions)]``.

    For every object box of every answer (its four coordinates read from ``labels``), the
    position that *predicts* each coordinate (the token before it) is paired with the image-token
    positions whose cell centre lies inside that box, in the merged-token grid of the sample's
    image. Boxes that cover no cell centre give no target.

    ``parts=True`` (issue 18; off by default) adds the part boxes and the affordance points: a
    part box's coordinates are paired with the cells inside the part box or, for a part smaller
    than a cell (a handle, a knob), the one cell that holds the box centre; a point's two
    coordinates with the cell that holds the point. Without it, parts and points give no target.
    """
    found = _tagged_targets(input_ids, labels, image_grid_thw, image_token_id=image_token_id,
                            first_coord_id=first_coord_id, merge_size=merge_size, tokenizer=tokenizer,
                            num_bins=num_bins, parts=parts)
    return [(b, q, cells) for b, q, cells, _ in found]


def object_and_part_targets(
    input_ids, labels, image_grid_thw, *, image_token_id: int, first_coord_id: int, merge_size: int, tokenizer,
    num_bins: int = 1000,
) -> tuple[list[tuple[int, int, list[int]]], list[tuple[int, int, list[int]]]]:
    """``attention_targets(parts=True)`` in two lists: the object-box targets and the part-box /
    affordance-point targets, each in batch order (``train.attention_supervision_part_head`` puts
    the second list on a head of its own)."""
    found = _tagged_targets(input_ids, labels, image_grid_thw, image_token_id=image_token_id,
                            first_coord_id=first_coord_id, merge_size=merge_size, tokenizer=tokenizer,
                            num_bins=num_bins, parts=True)
    objects = [(b, q, cells) for b, q, cells, is_part in found if not is_part]
    part_list = [(b, q, cells) for b, q, cells, is_part in found if is_part]
    return objects, part_list


def _tagged_targets(
    input_ids, labels, image_grid_thw, *, image_token_id: int, first_coord_id: int, merge_size: int, tokenizer,
    num_bins: int, parts: bool,
) -> list[tuple[int, int, list[int], bool]]:
    """The targets of :func:`attention_targets`, each tagged ``True`` when it is a part box's or a point's."""
    out: list[tuple[int, int, list[int], bool]] = []
    grids = image_grid_thw.tolist() if hasattr(image_grid_thw, "tolist") else list(image_grid_thw)
    scale = float(num_bins - 1)
    for b in range(len(input_ids)):
        ids = input_ids[b].tolist() if hasattr(input_ids[b], "tolist") else list(input_ids[b])
        labs = labels[b].tolist() if hasattr(labels[b], "tolist") else list(labels[b])
        image_positions = [i for i, t in enumerate(ids) if t == image_token_id]
        _, gh, gw = (int(v) for v in grids[b])
        gh, gw = gh // merge_size, gw // merge_size
        if len(image_positions) != gh * gw:
            continue  # not one image of this grid (e.g. truncated): no target rather than a wrong one
        roles = coordinate_roles(ids, labs, first_coord_id, tokenizer, num_bins)
        j = 0
        while j < len(roles):
            role = roles[j][1]
            if role == "object_x1":
                box_roles = roles[j : j + 4]
                if len(box_roles) == 4 and all(r == "object_box" for _, r in box_roles[1:]):
                    x0, y0, x1, y1 = ((ids[q] - first_coord_id) / scale for q, _ in box_roles)
                    cells = [image_positions[k] for k in _cells_in_box(x0, y0, x1, y1, gh, gw)]
                    if cells:
                        out.extend((b, q - 1, cells, False) for q, _ in box_roles)
                j += 1
                continue
            if parts and role == "part_box":
                box_roles = roles[j : j + 4]
                if len(box_roles) == 4 and all(r == "part_box" for _, r in box_roles) and _consecutive(box_roles):
                    x0, y0, x1, y1 = ((ids[q] - first_coord_id) / scale for q, _ in box_roles)
                    grid_cells = _cells_in_box(x0, y0, x1, y1, gh, gw) or [_cell_at((x0 + x1) / 2, (y0 + y1) / 2, gh, gw)]
                    cells = [image_positions[k] for k in grid_cells]
                    out.extend((b, q - 1, cells, True) for q, _ in box_roles)
                    j += 4
                    continue
            if parts and role == "point":
                pt_roles = roles[j : j + 2]
                if len(pt_roles) == 2 and pt_roles[1][1] == "point" and _consecutive(pt_roles):
                    x, y = ((ids[q] - first_coord_id) / scale for q, _ in pt_roles)
                    cells = [image_positions[_cell_at(x, y, gh, gw)]]
                    out.extend((b, q - 1, cells, True) for q, _ in pt_roles)
                    j += 2
                    continue
            j += 1
    return out


def _consecutive(roles: Sequence[tuple[int, str]]) -> bool:
    """The coordinate tokens sit next to each other (one box or point, not the ends of two)."""
    return all(roles[k + 1][0] == roles[k][0] + 1 for k in range(len(roles) - 1))


def attention_supervision_loss(attentions, targets, *, layer: int = -1, head: int = 0, gather: bool = False):
    """Mean ``-log`` of the attention mass that one head puts on each target's image tokens.

    ``attentions``: the model's per-layer attention probabilities ``(batch, heads, query, key)``
    (``output_attentions=True`` with eager attention). 0 (still differentiable) without targets.

    ``gather=True`` (issue 18; ``train.attention_supervision_gather``) computes the same loss with
    one indexing operation and a 0/1 mask instead of one small tensor operation per target: the
    same value and gradient up to float rounding, 11 % (v1) to 32 % (v2, whose part targets triple
    their number) more steps per second on 2 CPU threads. Off by default because the rounding
    differs, so a v1 run would drift from its earlier numbers after a few dozen steps.
    """
    att = attentions[layer][:, head]
    if not targets:
        return att.sum() * 0.0
    if not gather:
        terms = [-torch.log(att[b, q, cells].sum().clamp(min=1e-6)) for b, q, cells in targets]
        return torch.stack(terms).mean()
    rows = att[[b for b, _, _ in targets], [q for _, q, _ in targets]]  # (targets, keys)
    mask = torch.zeros(rows.shape, dtype=rows.dtype, device=rows.device)
    mask[[i for i, (_, _, cells) in enumerate(targets) for _ in cells], [k for _, _, cells in targets for k in cells]] = 1
    return -torch.log((rows * mask).sum(dim=-1).clamp(min=1e-6)).mean()


__all__ = [
    "BACKGROUND",
    "NO_BOX",
    "TokenClassHead",
    "attention_supervision_loss",
    "attention_targets",
    "class_vocabulary",
    "object_and_part_targets",
    "token_box_map",
    "token_class_map",
    "token_targets",
]
