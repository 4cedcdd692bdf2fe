"""Does a model look at the image? Coordinate-token loss with the right images against shuffled ones.

A model that learnt only the text prior (box sizes per class, parts relative to the object box
under teacher forcing) has the same loss whichever image it is shown; a model that grounds does
worse when every sample gets another sample's image. Measured on a training-layout TSV (the same
prompts and targets as training), teacher-forced, so it is cheap and available from the first
checkpoint on -- long before greedy decoding finds a box (docs/default_model.md).

:func:`image_dependence` returns the mean negative log-likelihood of the coordinate tokens
``<0>``..``<999>`` with the real images and with the images rotated by one sample inside each batch
(samples are grouped by image size so that the rotation keeps every grid), overall and by the
coordinate's role: the first coordinate of an object box (``object_x1``: it can only come from the
image or the class prior), the rest of the object box, part boxes and affordance points
(:mod:`sceneparser.training.roles`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sceneparser.errors import InputError
from sceneparser.model.patchify import materialise
from sceneparser.training.collator import SceneParserCollator
from sceneparser.training.roles import ROLES, coordinate_roles


def _rotated(group: list[dict]) -> list[dict]:
    """The samples of ``group`` with each one's image taken from the next sample."""
    keys = [k for k in ("pixel_values", "pixel_patches") if k in group[0]]
    out = []
    for i, s in enumerate(group):
        donor = group[(i + 1) % len(group)]
        t = dict(s)
        for k in keys:
            t[k] = donor[k]
        out.append(t)
    return out


def image_dependence(model, processor, dataset, *, num_samples: int = 48, batch_size: int = 16) -> dict[str, Any]:
    """Coordinate-token NLL with real vs shuffled images on the first ``num_samples`` samples.

    ``dataset`` is a :class:`~sceneparser.training.dataset.SceneParserTrainDataset`. Raises
    :class:`InputError` when no two samples share an image size (nothing to shuffle with).
    """
    import torch

    tok = processor.tokenizer
    first = tok.convert_tokens_to_ids("<0>")
    if tok.convert_tokens_to_ids("<999>") != first + 999:
        raise InputError("the tokenizer's <0>..<999> are not consecutive ids")
    n = min(int(num_samples), len(dataset))
    samples = [dataset[i] for i in range(n)]
    by_grid: dict[tuple, list[dict]] = defaultdict(list)
    for s in samples:
        by_grid[tuple(int(x) for x in s["image_grid_thw"][0])].append(s)
    groups = [g for g in by_grid.values() if len(g) >= 2]
    if not groups:
        raise InputError("no two samples share an image size: cannot shuffle images between them")
    collate = SceneParserCollator(
        pad_token_id=processor.pad_token_id, image_processor=processor.image_processor, pixel_format="uint8"
    )
    sums = {"real": defaultdict(float), "shuffled": defaultdict(float)}
    counts: dict[str, int] = defaultdict(int)
    used = 0
    was_training = model.training
    model.eval()
    try:
        for group in groups:
            used += len(group)
            for variant, members in (("real", group), ("shuffled", _rotated(group))):
                for start in range(0, len(members), batch_size):
                    chunk = members[start : start + batch_size]
                    batch = collate(chunk)
                    batch.pop("sp_stats", None)
                    labels = batch.pop("labels")
                    if "pixel_patches" in batch:
                        batch["pixel_values"] = materialise(
                            processor.image_processor, batch.pop("pixel_patches"), batch["image_grid_thw"]
                        )
                    with torch.no_grad():
                        logits = model(**batch).logits.float()
                    logp = torch.log_softmax(logits[:, :-1], dim=-1)
                    for row in range(labels.shape[0]):
                        ids = batch["input_ids"][row].tolist()
                        for pos, role in coordinate_roles(ids, labels[row].tolist(), first, tok):
                            nll = -float(logp[row, pos - 1, ids[pos]])
                            sums[variant][role] += nll
                            sums[variant]["all"] += nll
                            if variant == "real":
                                counts[role] += 1
                                counts["all"] += 1
    finally:
        model.train(was_training)
    if not counts.get("all"):
        raise InputError("the samples hold no supervised coordinate tokens")
    report: dict[str, Any] = {"samples": used, "coordinate_tokens": counts["all"]}
    for role in ("all", *ROLES):
        if counts.get(role):
            real = sums["real"][role] / counts[role]
            shuffled = sums["shuffled"][role] / counts[role]
            report[role] = {"tokens": counts[role], "real": real, "shuffled": shuffled, "gap": shuffled - real}
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"coordinate-token NLL over {report['samples']} samples "
        f"({report['coordinate_tokens']} coordinate tokens); gap = shuffled - real (> 0: the model uses the image)",
        f"{'role':<12}{'tokens':>8}{'real':>10}{'shuffled':>10}{'gap':>10}",
    ]
    for role in ("all", *ROLES):
        r = report.get(role)
        if r:
            lines.append(f"{role:<12}{r['tokens']:>8}{r['real']:>10.4f}{r['shuffled']:>10.4f}{r['gap']:>+10.4f}")
    return "\n".join(lines)


__all__ = ["format_report", "image_dependence"]
