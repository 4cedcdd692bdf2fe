"""``sceneparser demo``: the gradio web page (upload or pick an image, query or whole scene,
boxes and points beside the JSON tree, JSON download)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile

from sceneparser.commands.serve import served_name, warn_if_public
from sceneparser.demo.app import build_demo, launch
from sceneparser.demo.examples import write_examples
from sceneparser.demo.predict import make_predict
from sceneparser.errors import InputError, require
from sceneparser.serve.jobs import load_parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="model directory or hub id (default: the shipped default model)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default=None, help="torch dtype, e.g. bfloat16 (default: the model's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="generation cap per answer")
    parser.add_argument("--max-image-pixels", type=int, default=4096 * 4096,
                        help="larger uploads are refused (default: %(default)s)")
    parser.add_argument("--examples-dir", default=None,
                        help="where the example images are written (default: a temporary folder)")


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:  # cheap check; gradio itself is imported later
        require("gradio", "demo")
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port} is not a valid port")

    parser = load_parser(args.model, device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                         max_image_pixels=args.max_image_pixels)
    examples = write_examples(args.examples_dir or tempfile.mkdtemp(prefix="sceneparser-examples-"))
    demo = build_demo(make_predict(parser), examples, model_name=served_name(args.model, None))
    warn_if_public(args.host)
    print(f"sceneparser demo: http://{args.host}:{args.port}", file=sys.stderr)
    launch(demo, host=args.host, port=args.port, block=True)
    return 0
