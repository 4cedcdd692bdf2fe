"""``sceneparser serve``: the HTTP service (FastAPI + uvicorn) with dynamic batching.

Endpoints: ``POST /v1/parse`` (JSON with base64, or a multipart upload), ``POST
/v1/chat/completions`` (OpenAI-compatible, image as a data URL), ``GET /v1/models``,
``GET /health``, and the OpenAPI schema at ``/openapi.json`` (browsable at ``/docs``).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from sceneparser.errors import InputError, require
from sceneparser.serve.jobs import load_parser, make_batch_fn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sceneparser.serve.app import ServeConfig  # imports fastapi; only for `sceneparser serve`

    d = ServeConfig()
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="model directory or hub id (default: the shipped default model)")
    parser.add_argument("--host", default=d.host,
                        help="address to bind (default: %(default)s, this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=d.port, help="port (default: %(default)s)")
    parser.add_argument("--max-batch-size", type=int, default=d.max_batch_size, metavar="B",
                        help="most requests answered in one model batch; 1 = serial (default: %(default)s)")
    parser.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms, metavar="T",
                        help="how long the first request of a batch waits for company (default: %(default)s)")
    parser.add_argument("--max-arrival-wait-ms", type=float, default=d.max_arrival_wait_ms, metavar="A",
                        help="extra wait, past --max-wait-ms, for requests already being read or decoded "
                             "(default: %(default)s)")
    parser.add_argument("--max-queue-size", type=int, default=d.max_queue_size, metavar="Q",
                        help="requests waiting beyond this get HTTP 429 (default: %(default)s)")
    parser.add_argument("--max-inflight", type=int, default=None, metavar="N",
                        help="requests inside the server at once, beyond which it answers 503 "
                             "(default: 2 x queue size + batch size)")
    parser.add_argument("--max-image-pixels", type=int, default=d.max_image_pixels, metavar="P",
                        help="larger images get HTTP 413, checked before decoding (default: %(default)s)")
    parser.add_argument("--max-request-bytes", type=int, default=d.max_request_bytes, metavar="S",
                        help="larger request bodies get HTTP 413, before they are read (default: %(default)s)")
    parser.add_argument("--max-query-chars", type=int, default=d.max_query_chars,
                        help="longest query or question accepted (default: %(default)s)")
    parser.add_argument("--request-timeout", type=float, default=d.request_timeout_s, metavar="SECONDS",
                        help="a request waiting longer for the model gets HTTP 503 (default: %(default)s)")
    parser.add_argument("--served-model-name", default=None,
                        help="model id reported by /v1/models and expected in chat requests "
                             "(default: the model directory's name; the --model value is accepted too)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default=None, help="torch dtype, e.g. bfloat16 (default: the model's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="generation cap per answer")
    parser.add_argument("--exif-transpose", action="store_true",
                        help="apply EXIF orientation to uploads (default: ignore it, as the reference does)")
    parser.add_argument("--api-key", default=None, metavar="KEY",
                        help="require 'Authorization: Bearer KEY' on every route but /health "
                             "(default: $SCENEPARSER_API_KEY; none: no authentication)")
    parser.add_argument("--allow-unauthenticated", action="store_true",
                        help="bind a non-loopback address without an API key (refused otherwise)")
    parser.add_argument("--min-score", type=float, default=None, metavar="S",
                        help="drop objects, parts and affordances whose confidence score is below S (0..1)")
    parser.add_argument("--body-timeout", type=float, default=d.body_timeout_s, metavar="SECONDS",
                        help="time to receive a request body, plus --body-timeout-per-mb per MB; then HTTP 408 "
                             "(default: %(default)s)")
    parser.add_argument("--body-timeout-per-mb", type=float, default=d.body_timeout_s_per_mb, metavar="SECONDS",
                        help="(default: %(default)s)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def served_name(model: str | None, explicit: str | None) -> str:
    if explicit:
        return explicit
    if not model:
        return "sceneparser"
    return Path(model).name or "sceneparser"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def warn_if_public(host: str) -> None:
    if not is_loopback(host):
        print(
            f"warning: binding {host}: the service has no authentication and is reachable from other machines",
            file=sys.stderr,
        )


def url_for(host: str, port: int) -> str:
    """``http://host:port`` with an IPv6 address in brackets (``http://[::]:8000``)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(args: argparse.Namespace) -> int:
    require("fastapi", "serve")
    uvicorn = require("uvicorn", "serve")
    require("multipart", "serve")
    for name in ("max_batch_size", "max_queue_size", "max_image_pixels", "max_request_bytes", "max_query_chars"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_inflight is not None and args.max_inflight < 1:
        raise InputError("--max-inflight must be at least 1")
    if args.max_wait_ms < 0 or args.max_arrival_wait_ms < 0 or args.request_timeout <= 0:
        raise InputError("--max-wait-ms and --max-arrival-wait-ms must be >= 0, --request-timeout > 0")
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port} is not a valid port")
    api_key = args.api_key or os.environ.get("SCENEPARSER_API_KEY") or None
    if api_key is None and not is_loopback(args.host) and not args.allow_unauthenticated:
        raise InputError(
            f"--host {args.host} is reachable from other machines and no API key is set: pass --api-key KEY "
            "(or set SCENEPARSER_API_KEY), or --allow-unauthenticated to serve it open"
        )
    if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
        raise InputError("--min-score must be between 0 and 1")
    if args.body_timeout <= 0 or args.body_timeout_per_mb < 0:
        raise InputError("--body-timeout must be > 0 and --body-timeout-per-mb >= 0")

    from sceneparser.serve.app import ServeConfig, create_app  # imports fastapi

    parser = load_parser(args.model, device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                         batch_size=args.max_batch_size, max_image_pixels=args.max_image_pixels,
                         min_score=args.min_score)
    cfg = ServeConfig(
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_arrival_wait_ms=args.max_arrival_wait_ms,
        max_queue_size=args.max_queue_size,
        max_image_pixels=args.max_image_pixels,
        max_request_bytes=args.max_request_bytes,
        max_query_chars=args.max_query_chars,
        request_timeout_s=args.request_timeout,
        model_name=served_name(args.model, args.served_model_name),
        model_aliases=(args.model,) if args.model else (),
        exif_transpose=args.exif_transpose,
        max_inflight=args.max_inflight,
        max_new_tokens=parser.backend.settings.max_new_tokens,
        api_key=api_key,
        body_timeout_s=args.body_timeout,
        body_timeout_s_per_mb=args.body_timeout_per_mb,
    )
    app = create_app(make_batch_fn(parser), cfg)
    if api_key is None:
        warn_if_public(args.host)
    auth = "API key required" if api_key else "no API key"
    print(f"sceneparser serve: {url_for(args.host, args.port)}  (docs at /docs, model '{cfg.model_name}', {auth})",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0
