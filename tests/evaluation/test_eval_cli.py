"""``sceneparser eval`` as a user runs it: the real CLI, the tiny model, real processes.

* a plain run writes the four result files and prints the summary table;
* a run killed with SIGKILL in the middle of writing a batch resumes to the same answers;
* ``torchrun --nproc-per-node 2`` on CPU gives the same answers and metrics as one process;

The killed run and the torchrun ranks are real processes; the other runs call the CLI entry point
in-process to save interpreter start-up time.
* an ``--out`` holding another run is refused without a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

MAX_NEW_TOKENS = "6"
BATCH = "1"


def _env():
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env.pop("SCENEPARSER_DEBUG", None)
    return env


def _args(model, data, out, *extra):
    return ["eval", "--model", str(model), "--data", str(data / "val.jsonl"), "--out", str(out),
            "--image-root", str(data), "--max-new-tokens", MAX_NEW_TOKENS, "--batch-size", BATCH,
            "--no-progress", *extra]


def _cli(*args, check=True):
    """``sceneparser ARGS`` in this process (the CLI entry point, without paying a new interpreter)."""
    from sceneparser import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(args))
    proc = subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def baseline(tiny_model_dir, synth_dir, tmp_path_factory):
    """One uninterrupted single-process run, shared by the comparisons below."""
    out = tmp_path_factory.mktemp("eval_cli") / "baseline"
    proc = _cli(*_args(tiny_model_dir, synth_dir, out))
    return out, proc


def test_eval_writes_the_four_files_and_a_summary(baseline):
    out, proc = baseline
    for name in ("answer.jsonl", "eval_results_full.json", "eval_results_filtered.json", "final_metrics.json"):
        assert (out / name).stat().st_size > 0, name
    final = json.loads((out / "final_metrics.json").read_text())
    assert list(final) == ["L1", "L2", "L3", "ParseRate"]
    assert all(0.0 <= v <= 1.0 for v in final.values())
    rows = [json.loads(x) for x in (out / "answer.jsonl").read_text().splitlines()]
    summary = json.loads((out / "eval_summary.json").read_text())
    assert len(rows) == summary["samples_total"] == summary["samples_scored"] > 0
    assert all(r["parse_status"] in ("ok", "repaired", "failed") for r in rows)
    assert all(r["raw_response"] is not None and r["task_name"] == "sceneparser_structured_parsing" for r in rows)
    assert "L1" in proc.stdout and "ParseRate" in proc.stdout and "samples scored" in proc.stdout


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from sceneparser import cli
    from sceneparser.evaluation import answers

    original = answers.AnswerWriter.append
    calls = [0]

    def append(self, rows):
        rows = list(rows)
        calls[0] += 1
        if calls[0] == 3:  # third batch: half of its bytes reach the file, then the process dies
            data = b"".join(answers.encode_line(r) for r in rows)
            os.write(self._fd, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, rows)

    answers.AnswerWriter.append = append
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def test_killed_run_resumes_to_the_same_answers(baseline, tiny_model_dir, synth_dir, tmp_path):
    ref_out, _ = baseline
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, *_args(tiny_model_dir, synth_dir, out)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    part = out / "parts" / "answers.shard-0-of-1.jsonl"
    data = part.read_bytes()
    assert data.count(b"\n") == 2 and not data.endswith(b"\n")  # two batches + a torn line
    assert not (out / "answer.jsonl").exists()

    proc = _cli(*_args(tiny_model_dir, synth_dir, out))
    assert "torn last line" in proc.stderr
    assert (out / "answer.jsonl").read_text() == (ref_out / "answer.jsonl").read_text()
    assert (out / "final_metrics.json").read_text() == (ref_out / "final_metrics.json").read_text()
    summary = json.loads((out / "eval_summary.json").read_text())
    assert summary["resumed_from_disk"] == 2
    assert summary["answered_this_run"] == summary["samples_total"] - 2


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process(baseline, tiny_model_dir, synth_dir, tmp_path):
    ref_out, _ = baseline
    out = tmp_path / "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "sceneparser.cli", *_args(tiny_model_dir, synth_dir, out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (out / "parts").iterdir()) == [
        "answers.shard-0-of-2.jsonl", "answers.shard-1-of-2.jsonl"]
    assert all((out / "parts" / n).stat().st_size > 0 for n in os.listdir(out / "parts"))  # both ranks answered
    assert (out / "answer.jsonl").read_text() == (ref_out / "answer.jsonl").read_text()
    for name in ("final_metrics.json", "eval_results_full.json", "eval_results_filtered.json"):
        assert (out / name).read_text() == (ref_out / name).read_text(), name
    summary = json.loads((out / "eval_summary.json").read_text())
    assert summary["shards"] == 2 and summary["answered_this_run"] == summary["samples_total"]
    assert proc.stdout.count("samples scored") == 1  # only rank 0 reports


def test_out_dir_of_another_run_is_refused_without_traceback(baseline, tiny_model_dir, synth_dir):
    ref_out, _ = baseline
    proc = _cli(*_args(tiny_model_dir, synth_dir, ref_out, "--parse-mode", "repair"), check=False)
    assert proc.returncode == 2
    assert "parse_mode" in proc.stderr and "--overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _cli("eval", "--model", str(tiny_model_dir), "--data", str(synth_dir / "nope.jsonl"),
                "--out", str(ref_out.parent / "x"), check=False)
    assert proc.returncode == 2 and "nope.jsonl" in proc.stderr and "Traceback" not in proc.stderr


def test_eval_without_model_uses_the_default_model_or_says_none_is_installed(tmp_path, monkeypatch, capsys):
    import argparse

    import sceneparser.model.loading as loading
    from sceneparser.cli import main
    from sceneparser.commands.eval import config_from_args

    empty = tmp_path / "no_model"
    monkeypatch.setattr(loading, "default_model_dir", lambda: empty)
    rc = main(["eval", "--data", str(tmp_path / "val.jsonl"), "--out", str(tmp_path / "out")])
    assert rc == 2 and "no default model is installed" in capsys.readouterr().err

    # a (fake) installed default model: its own pixel range, unless the flags say otherwise
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    (empty / "preprocessor_config.json").write_text(json.dumps({"min_pixels": 3136, "max_pixels": 37632}))
    args = argparse.Namespace(model=None, min_pixels=None, max_pixels=None)
    base = dict(data="v.jsonl", out="o", image_root=None, mask_root=None, level="object", batch_size=1,
                max_new_tokens=4, parse_mode="reference", limit=None, backend="hf", num_shards=1, shard_index=0,
                skip_missing=False, overwrite=False, question=None, device=None, dtype=None, max_model_len=4096,
                gpu_memory_utilization=0.8, no_fsync=False, no_progress=True, base_url=None, api_key=None,
                remote_model=None, concurrency=8)
    cfg = config_from_args(argparse.Namespace(**{**base, **vars(args)}))
    assert (cfg.model, cfg.min_pixels, cfg.max_pixels) == (str(empty), 3136, 37632)
    cfg = config_from_args(argparse.Namespace(**{**base, "model": None, "min_pixels": None, "max_pixels": 50000}))
    assert (cfg.min_pixels, cfg.max_pixels) == (3136, 50000)
    # a named model keeps the reference driver's range
    cfg = config_from_args(argparse.Namespace(**{**base, "model": "some/dir", "min_pixels": None, "max_pixels": None}))
    assert (cfg.model, cfg.min_pixels, cfg.max_pixels) == ("some/dir", 12544, 2007040)


def test_a_small_named_model_gets_the_reference_range_with_a_note(tmp_path, capsys):
    """`eval --model DIR` keeps the reference pixel range (the published protocol), but says so when
    the model was saved at a far smaller size, and how to score it at its own."""
    import argparse

    from sceneparser.commands.eval import _model_and_pixels
    from sceneparser.evaluation.runner import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS

    small = tmp_path / "small"
    small.mkdir()
    (small / "preprocessor_config.json").write_text(json.dumps({"min_pixels": 3136, "max_pixels": 37632}))

    def ask(**flags):
        args = argparse.Namespace(model=str(small), backend="hf", min_pixels=None, max_pixels=None, remote_model=None,
                                  base_url=None)
        vars(args).update(flags)
        return _model_and_pixels(args), capsys.readouterr().err

    (model, lo, hi), err = ask()
    assert (model, lo, hi) == (str(small), DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)  # numbers unchanged
    assert "--min-pixels 3136 --max-pixels 37632" in err
    (_, lo, hi), err = ask(min_pixels=3136, max_pixels=37632)
    assert (lo, hi) == (3136, 37632) and err == ""
    (small / "preprocessor_config.json").write_text(json.dumps({"min_pixels": 3136, "max_pixels": 12845056}))
    assert ask()[1] == ""  # a full-size checkpoint: nothing to say
