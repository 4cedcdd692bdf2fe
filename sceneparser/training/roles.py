"""The role of each supervised coordinate token of an answer: object box (first or rest), part box, point.

Shared by the attention-supervision loss (:mod:`sceneparser.training.grounding`, which pairs each
object-box coordinate with the image tokens under that box) and the image-dependence diagnostic
(:mod:`sceneparser.training.probe`, which reports the coordinate loss per role).
"""

from __future__ import annotations

from typing import Sequence

#: Roles of a coordinate token, in the order the probe report lists them.
ROLES = ("object_x1", "object_box", "part_box", "point")


def coordinate_roles(ids: Sequence[int], labels: Sequence[int], first_coord_id: int, tokenizer, num_bins: int = 1000):
    """``[(position, role)]`` of the supervised coordinate tokens of one sample (labels unshifted).

    The role comes from the text just before the run of coordinates the token belongs to:
    ``point`` right after a ``"point"`` key, ``part_box`` inside a JSON object that has a
    ``"part_name"``, else an object box (its first coordinate is ``object_x1``).
    """
    out = []
    last = first_coord_id + num_bins
    run = 0
    kind = "object"
    for pos, (tid, lab) in enumerate(zip(ids, labels)):
        is_coord = first_coord_id <= int(tid) < last
        if not is_coord:
            run = 0
            continue
        if int(lab) < 0:
            run += 1
            continue
        if run == 0:
            context = tokenizer.decode([int(t) for t in ids[max(0, pos - 64) : pos]])
            current = context[context.rfind("{") :]  # the JSON object this run of coordinates belongs to
            if '"point"' in context[-16:]:
                kind = "point"
            elif '"part_name"' in current:
                kind = "part_box"
            else:
                kind = "object"
        out.append((pos, "object_x1" if kind == "object" and run == 0 else ("object_box" if kind == "object" else kind)))
        run += 1
    return out


__all__ = ["ROLES", "coordinate_roles"]
