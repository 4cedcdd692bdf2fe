"""The ``sceneparser`` command: a thin dispatcher over the Python API.

Each sub-command lives in ``sceneparser/commands/<name>.py`` and defines
``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen command's module is
imported (through :data:`COMMANDS` and importlib): importing all of them would add about
0.7 s to every ``sceneparser --help``, and ``sceneparser metrics`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from sceneparser import __version__
from sceneparser.errors import SceneParserError, missing_extra

# name -> (module, one-line help). Order is the order shown by --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("sceneparser.commands.parse", "parse images into scene -> object -> part -> affordance JSON"),
    "eval": ("sceneparser.commands.eval", "run a model on a benchmark JSONL and score it (resumable)"),
    "metrics": ("sceneparser.commands.metrics", "score an answer.jsonl (L1/L2/L3 F1 and ParseRate)"),
    "coco": ("sceneparser.commands.coco", "COCO box AP for objects and parts (pycocotools) of an answer.jsonl or parse output"),
    "report": ("sceneparser.commands.report", "an HTML report that explains an eval folder (tables, errors, gallery)"),
    "export": ("sceneparser.commands.export", "write ground truth and predictions as COCO JSON"),
    "convert": ("sceneparser.commands.convert", "convert benchmark JSONL into the training TSV layout"),
    "synth": ("sceneparser.commands.synth", "generate a synthetic dataset in the benchmark format"),
    "train": ("sceneparser.commands.train", "train one curriculum stage or the whole curriculum"),
    "probe": ("sceneparser.commands.probe", "does a model use the image? coordinate loss with real vs shuffled images"),
    "serve": ("sceneparser.commands.serve", "HTTP service (FastAPI) with dynamic batching"),
    "export-serving": ("sceneparser.commands.export_serving",
                       "prepare a checkpoint folder for vllm serve / SGLang (tokenizer ids, generation config)"),
    "demo": ("sceneparser.commands.demo", "web demo (gradio)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sceneparser",
        description="Hierarchical scene parsing: scene -> object -> part -> affordance.",
    )
    parser.add_argument("--version", action="version", version=f"sceneparser {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
            p.add_argument("--verbose", action="store_true",
                           help="also show the dependencies' progress bars, logs and warnings")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        if getattr(args, "verbose", False):
            os.environ["SCENEPARSER_VERBOSE"] = "1"
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except SceneParserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `sceneparser parse ... | head`
        return 0
    except ImportError as exc:  # an optional extra that is not installed: name the pip command
        missing = missing_extra(exc)
        if missing is None or os.environ.get("SCENEPARSER_DEBUG"):
            raise
        print(f"error: {missing}", file=sys.stderr)
        return missing.exit_code
    except Exception as exc:  # never a raw traceback for the user
        if os.environ.get("SCENEPARSER_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc}\n"
            "(set SCENEPARSER_DEBUG=1 to see the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
