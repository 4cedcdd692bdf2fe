"""``scripts/gpu_check.sh`` (issue 20): the dry run on the CPU, and a CUDA-less machine failing cleanly.

The dry run is what CI runs so that the GPU check cannot rot: every part is present in the report,
the CUDA-only parts say "skipped: needs CUDA", the transformers backend's (a) single, (b) batched
and (c) prefix-reuse runs give identical tokens, and the figures are numbers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
CUDA_PARTS = ("generate_vllm", "eval_vllm", "train_zero2", "train_zero3")


def _load_module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, *args: str, timeout: int = 600) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "report" / "gpu_report.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("OUT", None)
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args, "--out", str(report), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, check=False,
    )
    assert report.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(report.read_text(encoding="utf-8"))


def _numbers(value, path="figures"):
    """Every leaf of a figures tree: (path, value)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}")
    else:
        yield path, value


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The dry run, once: ``(completed process, report, work directory)``."""
    pytest.importorskip("dashscope")  # the Qwen BPE ranks of the released tokenizer layout
    tmp = tmp_path_factory.mktemp("gpu_check_dry")
    proc, report = _run(tmp, "--dry-run")
    return proc, report, tmp / "work"


@pytest.mark.slow
def test_dry_run_report(dry_run):
    proc, report, _ = dry_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    module = _load_module()
    parts = report["parts"]
    assert list(parts) == [p.name for p in module.PARTS]
    assert report["dry_run"] is True and report["passed"] is True and report["failed_parts"] == []
    for name in CUDA_PARTS:
        assert parts[name]["status"] == "skipped"
        assert parts[name]["reason"] == "skipped: needs CUDA"
    for name in ("env", "build", "generate_hf", "eval_hf", "train_plain"):
        assert parts[name]["status"] == "passed", (name, parts[name].get("error"))
        assert all(parts[name]["checks"].values()), (name, parts[name]["checks"])

    build = parts["build"]
    assert build["checks"]["model_weights_equal_after_conversion"]
    assert build["checks"]["model_token_ids_match_rex_omni"] and build["checks"]["model_num_token_ids_151665"]
    assert build["info"]["model"]["config"]["vocab_size"] == 151936

    gen = parts["generate_hf"]
    assert gen["checks"]["b_tokens_identical_to_a"] and gen["checks"]["c_tokens_identical_to_a"]
    for mode in ("a_single", "b_batched", "c_batched_prefix_reuse"):
        fig = gen["figures"][mode]
        for key in ("seconds", "queries_per_s", "tokens_per_s"):
            assert isinstance(fig[key], (int, float)) and math.isfinite(fig[key]) and fig[key] > 0, (mode, key)
        assert fig["output_tokens"] == report["plan"]["gen_new_tokens"] * gen["info"]["prompts"]
    assert gen["figures"]["b_vs_a"]["identical_share"] == 1.0

    ev = parts["eval_hf"]["figures"]
    assert ev["samples_scored"] == report["plan"]["eval_samples"]
    assert set(ev["metrics"]) == {"L1", "L2", "L3", "ParseRate"}

    train = parts["train_plain"]
    assert train["checks"]["reloaded_weights_equal_trained"]
    assert train["checks"]["resumed_run_continues_from_the_same_loss"]

    for name, part in parts.items():
        for path, value in _numbers(part["figures"]):
            assert value is None or (isinstance(value, (int, float)) and math.isfinite(value)), (name, path, value)
    assert "PASSED" in proc.stdout and "skipped: needs CUDA" in proc.stdout


def test_without_cuda_the_cuda_parts_fail_and_the_others_still_run(tmp_path):
    """Not a dry run on a machine without CUDA: those parts fail with the reason, the rest runs, rc != 0."""
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc, report = _run(tmp_path, "--skip-install", "--parts", "env,generate_vllm,eval_hf", timeout=180)
    assert proc.returncode == 1
    parts = report["parts"]
    assert parts["env"]["status"] == "passed"
    assert parts["generate_vllm"]["status"] == "failed"
    assert "CUDA is not available" in parts["generate_vllm"]["error"]
    assert parts["eval_hf"]["status"] == "failed" and parts["eval_hf"]["error"]  # no model was built
    assert parts["build"]["status"] == "skipped" and parts["build"]["reason"] == "skipped: not selected (--parts)"
    assert set(report["failed_parts"]) == {"generate_vllm", "eval_hf"}


def test_released_weight_names():
    module = _load_module()
    assert module.legacy_weight_name("model.language_model.layers.0.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"
    assert module.legacy_weight_name("model.language_model.embed_tokens.weight") == "model.embed_tokens.weight"
    assert module.legacy_weight_name("model.visual.blocks.3.attn.qkv.bias") == "visual.blocks.3.attn.qkv.bias"
    assert module.legacy_weight_name("lm_head.weight") == "lm_head.weight"
    shape = module.SCALES["3b"]
    assert (shape["hidden_size"], shape["num_hidden_layers"], shape["vision_depth"]) == (2048, 36, 32)
    agree = module._agreement([[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [4, 9, 6]])
    assert agree["identical"] == 1 and agree["of"] == 2 and agree["mean_common_prefix_share"] == pytest.approx((1 + 1 / 3) / 2, abs=1e-4)


class _StandInVLLM:
    """A recording stand-in for the ``vllm`` module: every answer is ``min_tokens`` copies of one id."""

    def __init__(self, token: int):
        self.engine_kwargs = None
        self.params = []
        outer = self

        class SamplingParams(dict):
            def __init__(self, **kw):
                super().__init__(**kw)
                outer.params.append(kw)

        class LLM:
            def __init__(self, **kw):
                outer.engine_kwargs = kw

            def generate(self, inputs, params, use_tqdm=False):
                out = []
                for p in params:
                    ids = [token] * int(p.get("min_tokens") or 1)
                    first = SimpleNamespace(text="x" * len(ids), token_ids=ids, finish_reason="length")
                    out.append(SimpleNamespace(outputs=[first], prompt_token_ids=[1, 2, 3], metrics=None))
                return out

        self.LLM = LLM
        self.SamplingParams = SamplingParams


@pytest.mark.slow
def test_vllm_part_with_a_stand_in_engine(dry_run, monkeypatch, tmp_path):
    """Part (d) runs the vLLM backend at a fixed output length and measures its agreement with (a)."""
    _, report, work = dry_run
    module = _load_module()
    plan = json.loads((work / "plan.json").read_text(encoding="utf-8"))
    first = json.loads((work / "tokens_a.json").read_text(encoding="utf-8"))["tokens"][0][0]
    fake = _StandInVLLM(first)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setenv("SCENEPARSER_CACHE", str(work / "cache"))
    result = module.part_generate_vllm(plan, tmp_path / "log")
    n = plan["gen_new_tokens"]
    assert fake.engine_kwargs["gpu_memory_utilization"] == 0.8 and fake.engine_kwargs["max_model_len"] == 4096
    assert all(p["min_tokens"] == n and p["max_tokens"] == n for p in fake.params)
    assert result["checks"] == {"fixed_output_length": True}
    agree = result["figures"]["d_vs_a"]
    assert agree["of"] == report["parts"]["generate_hf"]["info"]["prompts"]
    assert 0.0 < agree["mean_common_prefix_share"] <= 1.0
    d = result["figures"]["d_vllm"]
    assert d["output_tokens"] == n * agree["of"] and d["queries_per_s"] > 0
