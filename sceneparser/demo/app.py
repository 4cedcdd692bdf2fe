"""The gradio page: pick or upload an image, type a query (or choose the whole scene), and see the
picture with boxes and points next to the JSON tree, with the JSON as a download.

:func:`build_demo` takes a ``predict(image, query, scene) -> (annotated image, json dict)``
callable, so the page is independent of the model; :func:`sceneparser.demo.predict.make_predict`
builds that callable over a :class:`~sceneparser.inference.api.SceneParser`. gradio is imported
lazily (``pip install 'sceneparser[demo]'``).
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

from sceneparser.errors import SceneParserError, require

Predict = Callable[[Any, str, bool], "tuple[Any, dict]"]

TITLE = "SceneParser: scene → object → part → affordance"
INTRO = (
    "Upload a picture (or pick an example), type an object category such as `mug` "
    "(several: `mug, door`) or tick **whole scene**, and press **Parse**. "
    "Boxes are objects and parts, dots are affordance points; the JSON is in pixel coordinates."
)

# element ids the browser test (tests/serve/test_demo_browser.py) relies on
IDS = {
    "image": "sp-image",
    "query": "sp-query",
    "scene": "sp-scene",
    "run": "sp-run",
    "result_image": "sp-result-image",
    "result_json": "sp-result-json",
    "download": "sp-download",
    "status": "sp-status",
}


def theme():
    """A theme with no web fonts, so the page never reaches outside the machine."""
    gr = require("gradio", "demo")
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "Consolas", "monospace"],
    )


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest JSON files, so a long-running demo stays bounded."""
    files = sorted(folder.glob("sceneparser-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def build_demo(
    predict: Predict,
    examples: Sequence[tuple[str, str, bool]] = (),
    *,
    model_name: str = "sceneparser",
    json_dir: str | Path | None = None,
    max_json_files: int = 200,
):
    """Build the gradio Blocks page around ``predict``.

    ``examples`` are ``(image path, query, scene)`` triples shown under the input. ``predict``
    gets the uploaded file's path as it was uploaded (gradio converts nothing) and opens it
    itself, so the page accepts every image the CLI accepts. The JSON of
    each run is also written to ``json_dir`` (a temporary folder by default, keeping the newest
    ``max_json_files``) for the download button.
    """
    gr = require("gradio", "demo")
    out_dir = Path(json_dir) if json_dir is not None else Path(tempfile.mkdtemp(prefix="sceneparser-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)

    def run(image, query: str | None, scene: bool):
        if image is None:
            raise gr.Error("Upload an image or pick an example first.")
        query = (query or "").strip()
        if not query and not scene:
            raise gr.Error("Type an object category (e.g. 'mug') or tick 'whole scene'.")
        try:
            annotated, payload = predict(image, query, bool(scene))
        except SceneParserError as exc:
            raise gr.Error(str(exc)) from None
        path = out_dir / f"sceneparser-{uuid.uuid4().hex[:12]}.json"
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        _prune(out_dir, keep=max_json_files)
        n = len(payload.get("objects", []))
        status = payload.get("status", "ok")
        summary = f"**{n} object{'s' if n != 1 else ''}** · parse status `{status}`"
        if payload.get("reason"):
            summary += f" · {payload['reason']}"
        return annotated, payload, str(path), summary

    with gr.Blocks(title=f"SceneParser demo ({model_name})", analytics_enabled=False,
                   delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}\n\nModel: `{model_name}`")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", image_mode=None, label="Image", sources=["upload", "clipboard"], elem_id=IDS["image"],
                                 height=360)
                query = gr.Textbox(label="Query", placeholder="object category, e.g. mug  (several: mug, door)",
                                   elem_id=IDS["query"], max_lines=1)
                scene = gr.Checkbox(label="whole scene (all objects)", value=False, elem_id=IDS["scene"])
                button = gr.Button("Parse", variant="primary", elem_id=IDS["run"])
                if examples:
                    gr.Examples(
                        examples=[[str(p), q, s] for p, q, s in examples],
                        inputs=[image, query, scene],
                        label="Examples",
                    )
            with gr.Column(scale=1):
                result_image = gr.Image(type="pil", label="Result", interactive=False, elem_id=IDS["result_image"],
                                        height=360, format="png")
                status = gr.Markdown(elem_id=IDS["status"])
                result_json = gr.JSON(label="JSON tree", elem_id=IDS["result_json"], open=True, max_height=420)
                download = gr.DownloadButton("Download JSON", elem_id=IDS["download"])
        outputs = [result_image, result_json, download, status]
        button.click(run, inputs=[image, query, scene], outputs=outputs, api_name="parse")
        query.submit(run, inputs=[image, query, scene], outputs=outputs, api_name=False)
    return demo


def launch(demo, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True, max_file_size: str | int = "20mb"):
    """Serve the page on ``host:port`` (loopback by default); returns gradio's (app, local_url, share_url)."""
    return demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=not block,
        ssr_mode=False,
        max_file_size=max_file_size,
        theme=theme(),
        footer_links=["api"],
    )
