"""Benchmark the remote backend: eval-style throughput over ``--backend openai`` against
``sceneparser serve`` on loopback, next to the in-process transformers backend on the same data.

The same ``--samples`` (image, question) pairs are answered (a) in process by ``SceneParser.parse_many``
(batch ``--batch-size``) and (b) through ``SceneParser.from_server`` with 1, 4 and 16 requests in
flight against a ``sceneparser serve`` process (dynamic batching, ``--max-batch-size`` =
``--batch-size``). Every answer has exactly ``--tokens`` tokens (``min_new_tokens`` = cap, tiny
random model), so every request costs the same; answers are checked equal between the paths.

    python benchmarks/bench_remote.py                     # tiny random model, built on the fly
    python benchmarks/bench_remote.py --samples 64 --json out.json

Client, server and the in-process run share the machine's cores; the target is remote at 16 in
flight >= 0.8 x in-process samples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(out: Path, tokens: int) -> Path:
    from sceneparser.model.loading import save_model_dir
    from sceneparser.model.tiny import build_tiny

    model, processor = build_tiny(seed=0)
    save_model_dir(model, processor, out)
    return out


def _items(n: int, size: tuple[int, int]):
    from sceneparser.data.synth import render_scene
    from sceneparser.prompts import object_question

    cats = ["mug", "pan", "bottle", "kettle"]
    images = [render_scene(11, i, size)[0] for i in range(max(1, n // len(cats)))]
    return [{"image": images[i % len(images)], "question": object_question(cats[i % len(cats)])} for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=24, help="answer tokens per sample (fixed)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--image-size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each process (default 1)")
    ap.add_argument("--model", default=None, help="model directory (default: a tiny random model; 'default': the shipped one)")
    ap.add_argument("--max-wait-ms", type=float, default=10.0, help="the server's --max-wait-ms (default 10)")
    ap.add_argument("--eval-batch", type=int, default=0,
                    help="samples handed to the remote backend per call (eval's --batch-size; 0: all at once)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch

    from sceneparser.inference.api import SceneParser
    from sceneparser.model.loading import model_pixel_range

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix="bench-remote-")
    if args.model == "default":
        from sceneparser.model.loading import resolve_model_path

        model_dir = resolve_model_path(None)
    else:
        model_dir = Path(args.model) if args.model else _model(Path(tmp.name) / "tiny", args.tokens)
    items = _items(args.samples, tuple(args.image_size))
    gen = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens, stop_strings=(), batch_size=args.batch_size)
    local = SceneParser.from_pretrained(model_dir, device="cpu", **gen)
    local.parse_many(items[:2])  # warm-up
    t0 = time.perf_counter()
    ref = local.parse_many(items)
    in_process = args.samples / (time.perf_counter() - t0)
    rows = [{"path": "in-process", "in_flight": args.batch_size, "samples_per_s": round(in_process, 3)}]
    del local

    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(args.threads))
    server_code = (
        "import sys, torch; torch.set_num_threads(%d);"
        "from sceneparser.serve.app import ServeConfig, create_app; from sceneparser.serve.jobs import make_batch_fn;"
        "from sceneparser.inference.api import SceneParser; import uvicorn;"
        "p = SceneParser.from_pretrained(%r, device='cpu', max_new_tokens=%d, min_new_tokens=%d, stop_strings=(), batch_size=%d);"
        "app = create_app(make_batch_fn(p), ServeConfig(max_batch_size=%d, max_wait_ms=%g, max_new_tokens=%d, "
        "max_queue_size=256, model_name='tiny'));"
        "uvicorn.run(app, host='127.0.0.1', port=%d, log_level='warning')"
    ) % (args.threads, str(model_dir), args.tokens, args.tokens, args.batch_size, args.batch_size, args.max_wait_ms,
         args.tokens, port)
    server = subprocess.Popen([sys.executable, "-c", server_code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        import httpx

        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"server did not start: {server.stderr.read()[-2000:]}")
            time.sleep(0.3)
        lo, hi = model_pixel_range(model_dir, (0, 0))
        for c in args.concurrency:
            remote = SceneParser.from_server(f"http://127.0.0.1:{port}/v1", concurrency=c, min_pixels=lo,
                                             max_pixels=hi, max_new_tokens=args.tokens)
            remote.parse_many(items[:2])
            before = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["stats"]
            t0 = time.perf_counter()
            got = []
            step = args.eval_batch or len(items)
            for k in range(0, len(items), step):  # eval hands the backend --batch-size samples at a time
                got += remote.parse_many(items[k:k + step])
            rate = args.samples / (time.perf_counter() - t0)
            stats = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["stats"]
            done = stats["batches"] - before["batches"]
            batch = round((stats["items"] - before["items"]) / done, 2) if done else None
            same = sum(a.raw_text == b.raw_text for a, b in zip(ref, got))
            rows.append({"path": "remote", "in_flight": c, "samples_per_s": round(rate, 3),
                         "ratio_to_in_process": round(rate / in_process, 3), "answers_equal": f"{same}/{len(items)}",
                         "server_mean_batch": batch})
    finally:
        server.terminate()
        server.wait(30)
        tmp.cleanup()
    print(f"{'path':11} {'in flight':>9} {'samples/s':>10} {'x in-proc':>10} {'equal':>8} {'server batch':>13}")
    for r in rows:
        print(f"{r['path']:11} {r['in_flight']:>9} {r['samples_per_s']:>10.2f} {r.get('ratio_to_in_process', 1.0):>10.2f} "
              f"{r.get('answers_equal', '-'):>8} {str(r.get('server_mean_batch', '-')):>13}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
