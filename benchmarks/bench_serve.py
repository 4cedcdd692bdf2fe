"""Benchmark the HTTP service on loopback: dynamic batching vs serial handling.

For each mode (``serial`` = ``--max-batch-size 1``, ``batched`` = ``--max-batch-size B``) the script
starts ``sceneparser serve`` as a separate process (both stay up, and each cell is split into
``--rounds`` rounds that alternate between the modes, so background load hits both alike), then for
each client concurrency (default 1, 4 and 16) sends a bounded number of ``POST /v1/parse`` requests from that many concurrent clients
and reports requests/s and p50/p95 latency, plus the mean batch size the server formed.

    python benchmarks/bench_serve.py                       # tiny random model, built on the fly
    python benchmarks/bench_serve.py --model DIR --requests 64 --json out.json

With the tiny random model every answer runs to ``--max-new-tokens`` (it never emits a stop token),
so every request costs the same. Client and server share the machine's cores: run it on a quiet
machine and compare modes from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _image_b64(size: tuple[int, int]) -> str:
    from sceneparser.data.synth import render_scene

    image, _, _ = render_scene(7, 0, size)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _tiny_model(out: Path) -> Path:
    from sceneparser.model.loading import save_model_dir
    from sceneparser.model.tiny import build_tiny

    model, processor = build_tiny(seed=0)
    save_model_dir(model, processor, out)
    return out


class Server:
    def __init__(self, model: Path, batch_size: int, args: argparse.Namespace):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "sceneparser.cli", "serve", "--model", str(model), "--port", str(self.port),
            "--max-batch-size", str(batch_size), "--max-wait-ms", str(args.max_wait_ms),
            "--max-new-tokens", str(args.max_new_tokens), "--max-queue-size", str(max(64, 4 * max(args.concurrency))),
            "--log-level", "warning",
        ]
        if args.device:
            cmd += ["--device", args.device]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)

    def wait(self, timeout: float = 300) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.proc.stderr.read()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit("server did not start")

    def stats(self) -> dict:
        import httpx

        return httpx.get(self.url + "/health", timeout=10).json()["stats"]

    def rss_mb(self) -> float:
        """Resident memory of the server process (MB), from /proc."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _load(url: str, body: dict, clients: int, requests: int) -> tuple[float, list[float], int]:
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker():
            nonlocal errors
            for _ in counter:
                t0 = time.perf_counter()
                resp = await client.post("/v1/parse", json=body)
                latencies.append(time.perf_counter() - t0)
                if resp.status_code != 200:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return wall, latencies, errors


def run(args: argparse.Namespace) -> list[dict]:
    from tqdm import tqdm

    tmp = tempfile.TemporaryDirectory(prefix="bench-serve-")
    model = Path(args.model) if args.model else _tiny_model(Path(tmp.name) / "tiny")
    body = {"image": _image_b64(tuple(args.image_size)), "query": "mug"}
    modes = [("serial", 1), ("batched", args.max_batch_size)]
    rows: list[dict] = []
    cells = tqdm(total=len(modes) * len(args.concurrency), desc="bench_serve", file=sys.stderr)
    # Both servers are up for the whole run and the modes alternate cell by cell, so a change in
    # the machine's background load hits both alike.
    servers = {mode: Server(model, batch_size, args) for mode, batch_size in modes}
    try:
        for server in servers.values():
            server.wait()
            asyncio.run(_load(server.url, body, 2, args.warmup))  # warm-up: first calls are slower
        for clients in args.concurrency:
            # each cell's requests are split into rounds that alternate between the modes
            acc = {mode: {"wall": 0.0, "lat": [], "errors": 0, "items": 0, "batches": 0, "rss": []} for mode, _ in modes}
            per_round = [args.requests // args.rounds + (i < args.requests % args.rounds) for i in range(args.rounds)]
            for n in per_round:
                for mode, _ in modes:
                    server, a = servers[mode], acc[mode]
                    before = server.stats()
                    wall, lat, errors = asyncio.run(_load(server.url, body, clients, n))
                    after = server.stats()
                    a["wall"] += wall
                    a["lat"] += lat
                    a["errors"] += errors
                    a["items"] += after["items"] - before["items"]
                    a["batches"] += after["batches"] - before["batches"]
                    a["rss"].append(server.rss_mb())
            for mode, batch_size in modes:
                a = acc[mode]
                lat = a["lat"]
                rows.append({
                    "mode": mode, "max_batch_size": batch_size, "clients": clients, "requests": len(lat),
                    "errors": a["errors"], "wall_s": round(a["wall"], 3), "req_per_s": round(len(lat) / a["wall"], 3),
                    "p50_ms": round(_percentile(lat, 0.5) * 1000, 1), "p95_ms": round(_percentile(lat, 0.95) * 1000, 1),
                    "mean_latency_ms": round(statistics.fmean(lat) * 1000, 1),
                    "mean_batch": round(a["items"] / a["batches"], 2) if a["batches"] else 0.0,
                    "rss_mb_after_each_round": a["rss"],
                })
                cells.update(1)
    finally:
        for server in servers.values():
            server.stop()
    cells.close()
    tmp.cleanup()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model directory (default: a tiny random model)")
    ap.add_argument("--requests", type=int, default=96, help="requests per (mode, concurrency) cell")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--rounds", type=int, default=3,
                    help="split each cell into this many rounds, alternating the modes (evens out background load)")
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--image-size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)

    rows = run(args)
    print(f"\n{'mode':8} {'B':>3} {'clients':>7} {'req':>4} {'err':>3} {'req/s':>8} {'p50 ms':>9} {'p95 ms':>9} "
          f"{'batch':>6} {'RSS MB':>8}")
    for r in rows:
        print(f"{r['mode']:8} {r['max_batch_size']:>3} {r['clients']:>7} {r['requests']:>4} {r['errors']:>3} "
              f"{r['req_per_s']:>8.2f} {r['p50_ms']:>9.1f} {r['p95_ms']:>9.1f} {r['mean_batch']:>6.2f} "
              f"{r['rss_mb_after_each_round'][-1]:>8.1f}")
    by = {(r["mode"], r["clients"]): r for r in rows}
    for clients in args.concurrency:
        if ("serial", clients) in by and ("batched", clients) in by:
            ratio = by[("batched", clients)]["req_per_s"] / by[("serial", clients)]["req_per_s"]
            print(f"speed-up at {clients:>2} clients: {ratio:.2f}x")
    try:
        load = os.getloadavg()
        print(f"load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    except OSError:
        pass
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
