"""Example images for the demo page: a few procedural household scenes (``data.synth``), each
with a query naming one of its objects, written once into a folder."""

from __future__ import annotations

from pathlib import Path

from sceneparser.data.synth import render_scene

#: (seed, index) pairs picked for varied scenes; the query is the first object in each.
_PICKS = ((7, 0), (7, 3), (11, 5), (3, 2))


def write_examples(out_dir: str | Path, count: int = 3, size: tuple[int, int] = (640, 480)) -> list[tuple[str, str, bool]]:
    """Render ``count`` example scenes into ``out_dir``; returns ``(path, query, scene)`` triples.

    The last example asks for the whole scene; the others name one object in the picture.
    Existing files are reused, so calling this again is cheap.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples: list[tuple[str, str, bool]] = []
    for i, (seed, index) in enumerate(_PICKS[: max(1, count)]):
        image, objects, _ = render_scene(seed, index, size)
        path = out / f"example_{seed}_{index}_{size[0]}x{size[1]}.png"
        if not path.exists():
            image.save(path, format="PNG")
        scene = i == count - 1 and count > 1
        query = "" if scene or not objects else objects[0]["phrase"]
        examples.append((str(path), query, scene))
    return examples
