"""``sceneparser eval``: one resumable command from a model to ``final_metrics.json``.

Flow (the reference evaluation driver, docs/reference.md *object-metric* and *known-bugs*, with its crash-
and silence-related bugs fixed)::

    val.jsonl --records--> samples (one per image x sorted phrase; GT and prompt as the reference builds them)
        --shard (contiguous records, as the reference driver)--> this process's samples
        --skip those already answered (any answer file in OUT/parts)--> batches of --batch-size
        --SceneParser.parse_many (backend + parser)--> answer lines, appended + fsync'd
    rank 0 / the last shard: merge OUT/parts/* -> OUT/answer.jsonl (reference order)
        --metrics--> eval_results_full.json, eval_results_filtered.json --> final_metrics.json

Resume: every finished batch is durable before the next starts, so a kill loses at most the
batch in flight; a torn last line is dropped when the shard file is reopened; a re-run skips
answered ``(record, image, category)`` samples whichever shard layout wrote them. The run
manifest (``OUT/manifest.json``) refuses to mix models, data or answer-changing settings.

Scale out: ``torchrun --nproc-per-node N -m sceneparser.cli eval ...`` gives each rank one shard
(rank r uses ``cuda:LOCAL_RANK`` when CUDA is there) and rank 0 merges and scores after a barrier.
``--num-shards K --shard-index I`` does the same with independent processes: each answers its
shard, and whichever finds every sample answered merges and scores (or re-run without shard
options to do it).

Missing or undecodable images are reported and counted; by default their samples score as empty
predictions (``parse_status`` says why), ``skip_missing=True`` leaves them out as the reference
does. The answer line is the reference answer schema plus ``record_index``, ``parse_status`` and
``parse_error``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tqdm import tqdm

from sceneparser import io as atomic
from sceneparser import prompts
from sceneparser.data import records as records_mod
from sceneparser.errors import InputError
from sceneparser.evaluation import answers as answer_io
from sceneparser.evaluation import final as final_mod
from sceneparser.evaluation import manifest as manifest_io
from sceneparser.evaluation import metrics
from sceneparser.evaluation.samples import EvalSample, build_samples, resolve_image_path, shard_range
from sceneparser.images import DEFAULT_MAX_IMAGE_PIXELS, ImageError, open_image
from sceneparser.inference.api import SceneParser
from sceneparser.inference.remote_backend import OpenAIBackend
from sceneparser.inference.transformers_backend import TransformersBackend
from sceneparser.inference.types import Backend
from sceneparser.inference.vllm_backend import VLLMBackend

TASK_NAME = "sceneparser_structured_parsing"
DATASET_NAME = "SceneParserStructured"
STATUS_IMAGE_MISSING = "image_missing"
STATUS_IMAGE_UNDECODABLE = "image_undecodable"
#: a sample the backend could not answer (a remote server kept failing): scored as empty, and
#: asked again on the next run of the same command
STATUS_BACKEND_ERROR = "backend_error"
DEFAULT_MIN_PIXELS = 12544
DEFAULT_MAX_PIXELS = 2007040
_MAX_WARNINGS_SHOWN = 10


@dataclasses.dataclass
class EvalConfig:
    """Everything ``sceneparser eval`` needs; the CLI fills it from its flags."""

    model: str | None
    data: str
    out: str
    image_root: str | None = None  # default: the current directory (as the reference)
    mask_root: str | None = None  # default: image_root (see samples.py)
    level: str = "object"
    batch_size: int = 16  # the reference driver's CROSS_IMAGE_BATCH_SIZE
    max_new_tokens: int = 2048
    parse_mode: str = "reference"
    limit: int | None = None  # evaluate the first N valid val records (images) only
    backend: str = "hf"  # hf | vllm | openai (a remote OpenAI-compatible server)
    base_url: str | None = None  # --backend openai: the server, e.g. http://127.0.0.1:8000/v1
    api_key: str | None = None
    remote_model: str | None = None  # --backend openai: the served model name (default: the first listed)
    concurrency: int = 8  # --backend openai: requests in flight
    num_shards: int = 1
    shard_index: int = 0
    skip_missing: bool = False
    overwrite: bool = False
    question: str | None = None  # template with [OBJ] (object) / plain (scene); prefix added
    device: str | None = None
    dtype: str | None = None
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_model_len: int = 4096  # prompt + answer token budget (reference vLLM max_model_len)
    gpu_memory_utilization: float = 0.8  # vLLM only
    fsync: bool = True
    progress: bool = True
    dist_timeout_s: float = 24 * 3600.0


@dataclasses.dataclass
class EvalOutcome:
    """What a run did. ``final`` is None on a rank/shard that did not score."""

    out_dir: Path
    rank: int
    world: int
    scored: bool
    final: dict | None
    summary: dict


# ------------------------------------------------------------------------------------------
# small pure helpers
# ------------------------------------------------------------------------------------------


def answer_record(sample: EvalSample, prediction: dict, raw: str, status: str, reason: str | None) -> dict:
    """One answer line: the reference answer schema (docs/evaluation.md) plus our three fields."""
    return {
        "image_path": sample.image_path,
        "category": sample.category,
        "question": sample.question,
        "gt": sample.gt,
        "extracted_predictions": dict(prediction),
        "raw_response": raw,
        "task_name": TASK_NAME,
        "dataset_name": DATASET_NAME,
        "record_index": sample.record_index,
        "parse_status": status,
        "parse_error": reason,
    }


def image_problem_record(sample: EvalSample, problem: str) -> dict:
    status = STATUS_IMAGE_MISSING if problem == STATUS_IMAGE_MISSING else STATUS_IMAGE_UNDECODABLE
    return answer_record(sample, {"objects": []}, "", status, problem)


def batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def full_question_template(cfg: EvalConfig) -> str:
    if cfg.level == "scene":
        return prompts.scene_question(cfg.question)
    return prompts.object_question(prompts.OBJ_PLACEHOLDER, cfg.question)


def manifest_settings(cfg: EvalConfig) -> dict:
    """The settings that change answers (a mismatch on resume is refused)."""
    settings = {
        "level": cfg.level,
        "question": full_question_template(cfg),
        "system_prompt": prompts.SYSTEM_PROMPT_INFERENCE,
        "max_new_tokens": cfg.max_new_tokens,
        "parse_mode": cfg.parse_mode,
        "backend": cfg.backend,
        **({"base_url": cfg.base_url, "remote_model": cfg.remote_model} if cfg.backend == "openai" else {}),
        "dtype": cfg.dtype,
        "min_pixels": cfg.min_pixels,
        "max_pixels": cfg.max_pixels,
        "image_root": str(Path(cfg.image_root or ".").resolve()),
        "mask_root": str(Path(effective_mask_root(cfg)).resolve()) if effective_mask_root(cfg) else None,
    }
    settings["max_model_len"] = cfg.max_model_len
    return settings


def effective_mask_root(cfg: EvalConfig) -> str | None:
    return cfg.mask_root if cfg.mask_root is not None else cfg.image_root


# ------------------------------------------------------------------------------------------
# distributed context
# ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Dist:
    rank: int
    world: int
    local_rank: int
    torchrun: bool

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.torchrun:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list:
        """Every rank's ``obj`` (in rank order) on every rank."""
        if not self.torchrun:
            return [obj]
        import torch.distributed as dist

        box: list = [None] * self.world
        dist.all_gather_object(box, obj)
        return box

    def close(self, *, sync: bool = True) -> None:
        """Leave the process group. With ``sync`` (the normal end of a run) every rank waits at a
        barrier first, so no rank tears its gloo connections down while a peer still uses them (a
        rank that left early could abort with "terminate called without an active exception").
        After an error there is no barrier: a peer that failed may never reach it."""
        if self.torchrun:
            import torch.distributed as dist

            if dist.is_initialized():
                if sync:
                    try:
                        dist.barrier()
                    except RuntimeError:  # a peer went away: nothing left to wait for
                        pass
                dist.destroy_process_group()


def _dist_context(cfg: EvalConfig) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        if cfg.num_shards != 1:
            raise InputError("--num-shards/--shard-index cannot be combined with torchrun (one shard per rank)")
        import datetime

        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=cfg.dist_timeout_s))
        return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), True)
    if cfg.num_shards < 1 or not 0 <= cfg.shard_index < cfg.num_shards:
        raise InputError(f"--shard-index must be in [0, {cfg.num_shards}) and --num-shards >= 1")
    return _Dist(cfg.shard_index, cfg.num_shards, 0, False)


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------


def _load_val(cfg: EvalConfig) -> tuple[list[dict], list[int | None], list[dict], list[dict]]:
    """Valid val records (after --limit), their line numbers, the skipped lines and the warnings.

    ``sceneparser.data.records`` validates every line: lines it cannot use (not JSON, no
    ``image_path``, ...) are skipped and reported with their line number; malformed fields it
    neutralises (e.g. a box of the wrong length set to null, where the reference would crash)
    are warnings and the record is kept.
    """
    path = Path(cfg.data)
    if not path.is_file():
        raise InputError(f"--data {path}: no such file")
    report = records_mod.load_records(path, cfg.image_root)
    recs = list(report.records)
    if cfg.limit is not None:
        recs = recs[: cfg.limit]
    problems = [p.to_dict() for p in report.problems]
    errors = [p for p in problems if p.get("severity", "error") == "error"]
    warnings = [p for p in problems if p.get("severity") == "warning"]
    return [r.data for r in recs], [r.line for r in recs], errors, warnings


# ------------------------------------------------------------------------------------------
# backend
# ------------------------------------------------------------------------------------------


def make_backend(cfg: EvalConfig, dist: _Dist):
    """The generation backend for ``cfg.backend`` (imported only when chosen)."""
    device = cfg.device
    if device is None and dist.torchrun:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{dist.local_rank}"
    if cfg.backend == "vllm":
        return VLLMBackend(
            cfg.model,
            max_new_tokens=cfg.max_new_tokens,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            min_pixels=cfg.min_pixels,
            max_pixels=cfg.max_pixels,
            dtype=cfg.dtype,
            device=device,
        )
    if cfg.backend == "openai":
        if not cfg.base_url:
            raise InputError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        return OpenAIBackend(
            cfg.base_url,
            model=cfg.remote_model,
            api_key=cfg.api_key,
            concurrency=cfg.concurrency,
            min_pixels=cfg.min_pixels,
            max_pixels=cfg.max_pixels,
            max_new_tokens=cfg.max_new_tokens,
        )
    if cfg.backend != "hf":
        raise InputError(f"--backend must be 'hf', 'vllm' or 'openai', got {cfg.backend!r}")
    backend = TransformersBackend.from_pretrained(
        cfg.model,
        device=device,
        dtype=cfg.dtype,
        max_new_tokens=cfg.max_new_tokens,
        max_context=cfg.max_model_len,
        batch_size=cfg.batch_size,
    )
    # the reference passes MIN/MAX_PIXELS explicitly, whatever the checkpoint's preprocessor says
    ip = backend.processor.image_processor
    if (ip.min_pixels, ip.max_pixels) != (cfg.min_pixels, cfg.max_pixels):
        backend.processor.image_processor = dataclasses.replace(ip, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    return backend


def open_eval_image(path: str | os.PathLike) -> tuple[Any, str | None]:
    """``(image, None)`` or ``(None, problem)``: the image opened by the one loader
    (:func:`sceneparser.images.open_image`), a problem (``image_missing`` or
    ``image_undecodable: <reason>``) instead of an exception, so one bad file never stops a run."""
    try:
        return open_image(path, max_pixels=DEFAULT_MAX_IMAGE_PIXELS), None
    except ImageError as exc:
        if exc.code == "not_found":
            return None, STATUS_IMAGE_MISSING
        return None, f"{STATUS_IMAGE_UNDECODABLE}: {exc}"


# ------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------


def _new_metric(level: str, **options):
    return metrics.SceneLevelMetric(**options) if level == "scene" else metrics.ObjectLevelMetric(**options)


def score_answers(rows: Sequence[dict], level: str) -> tuple[dict, dict, dict]:
    """``(full, filtered, final)``: the reference driver's two metric runs and its four numbers.

    The filtered run ignores pseudo parts and none actions (the driver's ``--ignore_pseudo_part
    --ignore_none_action``); ``final`` is taken from it, as the driver does.
    """
    full = _new_metric(level)
    filtered = _new_metric(level, ignore_pseudo_part=True, ignore_none_action=True)
    for row in rows:
        full.update(row)
        filtered.update(row)
    filt_res = filtered.result()
    return full.result(), filt_res, final_mod.extract_final_metrics(filt_res)


class _RunningL1:
    """A cheap running L1 estimate for the progress bar (the streaming metric, no filters)."""

    def __init__(self, level: str):
        self.metric = _new_metric(level)
        self.n = 0

    def update(self, rows: Iterable[dict]) -> None:
        for r in rows:
            self.metric.update(r)
            self.n += 1

    def value(self) -> float | None:
        if not self.n:
            return None
        try:
            l1 = self.metric.result()["L1"]
            return float(l1["f1"] if isinstance(l1, dict) else l1)
        except Exception:  # pragma: no cover - the estimate must never stop a run
            return None


# ------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _validate(cfg: EvalConfig) -> None:
    if cfg.level not in ("object", "scene"):
        raise InputError(f"--level must be 'object' or 'scene', got {cfg.level!r}")
    if cfg.parse_mode not in ("reference", "repair"):
        raise InputError(f"--parse-mode must be 'reference' or 'repair', got {cfg.parse_mode!r}")
    if cfg.batch_size < 1:
        raise InputError("--batch-size must be >= 1")
    if cfg.max_new_tokens < 1:
        raise InputError("--max-new-tokens must be >= 1")
    if cfg.limit is not None and cfg.limit < 0:
        raise InputError("--limit must be >= 0")
    if cfg.image_root is not None and not Path(cfg.image_root).is_dir():
        raise InputError(f"--image-root {cfg.image_root}: not a directory")
    if cfg.question is not None and cfg.level == "object" and "[OBJ]" not in cfg.question:
        raise InputError("--question must contain [OBJ] (replaced by each category) at --level object")
    if cfg.overwrite and cfg.num_shards > 1:
        raise InputError(
            "--overwrite cannot be combined with --num-shards > 1 (independent shard processes would "
            "remove each other's answers): clear the output directory once, or use a new --out"
        )


def run_eval(cfg: EvalConfig, *, backend: Backend | None = None, log: Callable[[str], None] = _log) -> EvalOutcome:
    """Answer, merge and score as configured. ``backend`` (any :class:`~sceneparser.inference.types.Backend`)
    overrides the one built from ``cfg``."""
    t_start = time.perf_counter()
    _validate(cfg)
    dist = _dist_context(cfg)
    try:
        outcome = _run(cfg, dist, backend, log, t_start)
    except BaseException:
        dist.close(sync=False)
        raise
    dist.close()
    return outcome


def _run(cfg: EvalConfig, dist: _Dist, backend: Any, log: Callable[[str], None], t_start: float) -> EvalOutcome:
    out = Path(cfg.out)
    parts_dir = out / manifest_io.PARTS_DIR
    is_main = dist.rank == 0

    records, lines, bad_lines, record_warnings = _load_val(cfg)
    mask_root = effective_mask_root(cfg)
    samples, sample_problems = build_samples(
        records, level=cfg.level, question_template=cfg.question, mask_root=mask_root, lines=lines
    )
    if is_main or not dist.torchrun:
        for p in bad_lines:
            log(f"error: {cfg.data}:{p.get('line')}: {p.get('field') or 'record'}: {p.get('message')} (line skipped)")
        for p in record_warnings[:_MAX_WARNINGS_SHOWN]:
            log(f"warning: {cfg.data}:{p.get('line')}: {p.get('field')}: {p.get('message')}")
        if len(record_warnings) > _MAX_WARNINGS_SHOWN:
            log(f"warning: ... {len(record_warnings) - _MAX_WARNINGS_SHOWN} more (all in eval_summary.json)")
        for sp in sample_problems:
            where = f"{cfg.data}:{sp.line}" if sp.line is not None else f"record {sp.record_index}"
            log(f"warning: {where}: {sp.message} (record skipped; the reference would crash on it)")
    if not samples:
        raise InputError(f"--data {cfg.data}: no evaluable records (no image with a phrased object)")

    # --- the output directory and its manifest (rank 0 decides, the others follow) ---
    error = None
    resuming = False
    if is_main or not dist.torchrun:
        try:
            manifest = manifest_io.build_manifest(model=cfg.model, data=cfg.data, settings=manifest_settings(cfg))
            resuming = manifest_io.check_or_write(out, manifest, overwrite=cfg.overwrite)
        except InputError as exc:
            error = str(exc)
    error = dist.broadcast(error)
    if error:
        raise InputError(error)

    # --- this shard's work ---
    rec_range = shard_range(len(records), dist.world, dist.rank)
    mine = [s for s in samples if s.record_index in rec_range]
    own_path = parts_dir / answer_io.shard_file_name(dist.rank, dist.world)
    timing = {"prepare_s": time.perf_counter() - t_start, "load_model_s": 0.0, "generate_s": 0.0, "loop_s": 0.0}
    counts = {"answered_now": 0, "resumed": 0, "image_problems": 0, "backend_errors": 0}
    with answer_io.AnswerWriter(own_path, fsync=cfg.fsync) as writer:
        if writer.dropped_tail_bytes:
            log(f"note: dropped a torn last line ({writer.dropped_tail_bytes} bytes) of {own_path} from a killed run")
        answered = _answered(writer.existing)
        for f in answer_io.iter_answer_files(parts_dir):
            if f != own_path:
                for key, a in _answered(answer_io.read_answers(f)).items():
                    answered.setdefault(key, a)
        todo = [s for s in mine if s.key not in answered]
        counts["resumed"] = len(mine) - len(todo)
        if resuming and is_main:
            log(f"resuming {out}: {len(answered)} answers on disk")
        if todo:
            if backend is None:
                t0 = time.perf_counter()
                backend = make_backend(cfg, dist)
                timing["load_model_s"] = time.perf_counter() - t0
            running = _RunningL1(cfg.level)
            running.update(answered[s.key] for s in mine if s.key in answered)
            _answer(cfg, backend, todo, len(mine), writer, running, timing, counts, show=is_main and cfg.progress)

    # every rank's answers are on disk once everyone has reported (this is the barrier)
    per_rank = dist.gather({"rank": dist.rank, "counts": counts, "timing": timing})
    if dist.torchrun and not is_main:
        return EvalOutcome(out, dist.rank, dist.world, False, None, {"counts": counts, "timing": timing})
    if dist.torchrun:
        counts = {k: sum(r["counts"][k] for r in per_rank) for k in counts}

    # --- merge and score (rank 0 / any shard process that finds everything answered) ---
    merged, missing_images, pending = _merge(cfg, samples, parts_dir)
    if pending:
        log(
            f"shard {dist.rank} of {dist.world} done; {len(pending)} samples of other shards are not answered "
            f"yet. When they are, run the same command without --num-shards/--shard-index to merge and score."
        )
        return EvalOutcome(out, dist.rank, dist.world, False, None, {"counts": counts, "timing": timing})
    t_merge = time.perf_counter()
    mask_report = gt_mask_report(samples)
    n_rows = atomic.write_jsonl(out / "answer.jsonl", merged)
    full_res, filt_res, final = score_answers(merged, cfg.level)
    atomic.write_text(out / "eval_results_full.json", metrics.result_text(full_res))
    atomic.write_text(out / "eval_results_filtered.json", metrics.result_text(filt_res))
    atomic.write_text(out / "final_metrics.json", final_mod.final_metrics_text(final))
    timing["merge_score_s"] = time.perf_counter() - t_merge
    timing["total_s"] = time.perf_counter() - t_start
    summary = _summary(cfg, merged, n_rows, samples, bad_lines, sample_problems, missing_images, counts, timing, dist)
    summary["val_field_warnings"] = record_warnings
    summary["gt_masks"] = mask_report
    if mask_report["missing"]:
        log(
            f"note: {mask_report['missing']} of {mask_report['referenced']} GT mask files were not found "
            f"(e.g. {mask_report['example_missing']}); those affordances are checked against their boxes, "
            "as the reference does. Pass --image-root/--mask-root if the masks live elsewhere."
        )
    if dist.torchrun:
        summary["ranks"] = per_rank
    summary["final_metrics"] = final
    atomic.write_json(out / "eval_summary.json", summary)
    return EvalOutcome(out, dist.rank, dist.world, True, final, summary)


def _answer(cfg, backend, todo, total, writer, running, timing, counts, *, show: bool) -> None:
    """Answer ``todo`` batch by batch through :meth:`SceneParser.parse_many` and durably append the answers.

    Each batch's images are opened (by the one loader) in a background thread while the previous
    batch generates; a sample whose image cannot be opened is not stored (it is re-checked on
    every run and scored at merge time)."""
    parser = SceneParser(backend, parse_mode=cfg.parse_mode, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS)
    root = cfg.image_root

    def open_batch(batch: Sequence[EvalSample], previous: dict) -> dict[str, tuple[Any, str | None]]:
        # an image's categories may continue from the previous batch: reuse what it opened
        got = {}
        for s in batch:
            if s.image_path not in got:
                got[s.image_path] = previous.get(s.image_path) or open_eval_image(resolve_image_path(s.image_path, root))
        return got

    chunks = list(batches(todo, cfg.batch_size))
    bar = tqdm(total=total, initial=total - len(todo), desc="eval", unit="sample", file=sys.stderr,
               disable=not show, dynamic_ncols=True)
    t_loop = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sp-eval-images") as pool:
        nxt = pool.submit(open_batch, chunks[0], {}) if chunks else None
        for i, batch in enumerate(chunks):
            images = nxt.result()
            nxt = pool.submit(open_batch, chunks[i + 1], images) if i + 1 < len(chunks) else None
            answerable = [s for s in batch if images[s.image_path][1] is None]
            counts["image_problems"] += len(batch) - len(answerable)
            t0 = time.perf_counter()
            results = parser.parse_many(
                {"image": images[s.image_path][0], "question": s.question, "key": s.image_path} for s in answerable
            )
            timing["generate_s"] += time.perf_counter() - t0
            done = [
                answer_record(s, r.prediction, r.raw_text, STATUS_BACKEND_ERROR if r.backend_error else r.status, r.reason)
                for s, r in zip(answerable, results)
            ]
            counts["backend_errors"] += sum(1 for r in results if r.backend_error)
            writer.append(done)
            counts["answered_now"] += len(done)
            running.update(done)
            bar.update(len(batch))
            l1 = running.value()
            if l1 is not None:
                bar.set_postfix_str(f"L1~{l1:.3f}", refresh=False)
    bar.close()
    timing["loop_s"] += time.perf_counter() - t_loop


def _answered(rows: Iterable[dict]) -> dict[tuple, dict]:
    """The finished answers among ``rows`` by sample key (a backend error is not finished: it is
    asked again)."""
    return {answer_io.sample_key(a): a for a in rows if a.get("parse_status") != STATUS_BACKEND_ERROR}


def _merge(cfg: EvalConfig, samples: Sequence[EvalSample], parts_dir: Path):
    """Answers of every sample in reference order; image problems scored empty or skipped; a
    sample whose every answer is a backend error is scored with the last of them (empty)."""
    found: dict[tuple, dict] = {}
    for f in answer_io.iter_answer_files(parts_dir):
        for a in answer_io.read_answers(f):
            key = answer_io.sample_key(a)
            if key not in found or found[key].get("parse_status") == STATUS_BACKEND_ERROR:
                found[key] = a
    merged, missing, pending = [], [], []
    problem_cache: dict[str, str | None] = {}
    for s in samples:
        row = found.get(s.key)
        if row is not None:
            merged.append(row)
            continue
        if s.image_path not in problem_cache:
            _, problem_cache[s.image_path] = open_eval_image(resolve_image_path(s.image_path, cfg.image_root))
        problem = problem_cache[s.image_path]
        if problem is None:
            pending.append(s)
            continue
        missing.append({"image_path": s.image_path, "category": s.category, "problem": problem})
        if not cfg.skip_missing:
            merged.append(image_problem_record(s, problem))
    return merged, missing, pending


def gt_mask_report(samples: Iterable[EvalSample]) -> dict:
    """How many distinct GT ``mask_path`` files exist where the metric will look (the CWD)."""
    paths = {
        a["mask_path"]
        for s in samples
        for o in s.gt.get("objects") or []
        for p in o.get("parts") or []
        for a in p.get("affordances") or []
        if isinstance(a.get("mask_path"), str) and a["mask_path"]
    }
    missing = sorted(p for p in paths if not os.path.isfile(p))
    return {"referenced": len(paths), "missing": len(missing), "example_missing": missing[0] if missing else None}


def _summary(cfg, merged, n_rows, samples, bad_lines, sample_problems, missing, counts, timing, dist) -> dict:
    status_counts: dict[str, int] = {}
    for r in merged:
        st = r.get("parse_status") or "unknown"
        status_counts[st] = status_counts.get(st, 0) + 1
    missing_images = sorted({m["image_path"] for m in missing})
    gen = timing.get("generate_s", 0.0)
    loop = timing.get("loop_s", 0.0)
    run = timing.get("total_s", 0.0) - timing.get("load_model_s", 0.0)  # everything but loading the model
    return {
        "out_dir": str(Path(cfg.out)),
        "level": cfg.level,
        "backend": cfg.backend,
        "samples_total": len(samples),
        "samples_scored": n_rows,
        "answered_this_run": counts["answered_now"],
        "resumed_from_disk": counts["resumed"],
        "backend_errors_this_run": counts.get("backend_errors", 0),
        "parse_status": status_counts,
        "images_missing_or_undecodable": missing_images,
        "samples_with_image_problems": len(missing),
        "image_problem_policy": "skipped (reference behaviour)" if cfg.skip_missing else "scored as empty predictions",
        "bad_val_lines": bad_lines,
        "skipped_records": [dataclasses.asdict(p) for p in sample_problems],
        "shards": dist.world,
        "timing": {
            **{k: round(v, 4) for k, v in timing.items()},
            "outside_model_share_of_loop": round((loop - gen) / loop, 4) if loop > 0 else None,
            "outside_model_share": round((run - gen) / run, 4) if run > 0 and gen > 0 else None,
            "samples_per_s_loop": round(counts["answered_now"] / loop, 3) if loop > 0 else None,
        },
    }


def format_summary(summary: dict, final: dict | None) -> str:
    """The terminal summary table."""
    lines = []
    st = summary.get("parse_status", {})
    lines.append(f"sceneparser eval -> {summary.get('out_dir')}  ({summary.get('level')} level)")
    lines.append(
        f"  samples scored   {summary.get('samples_scored')} of {summary.get('samples_total')}"
        f"  (answered now {summary.get('answered_this_run')}, resumed {summary.get('resumed_from_disk')})"
    )
    lines.append("  parse status     " + ", ".join(f"{k} {v}" for k, v in sorted(st.items())))
    nerr = summary.get("parse_status", {}).get(STATUS_BACKEND_ERROR, 0)
    if nerr:
        lines.append(f"  backend errors   {nerr} samples scored empty; run the same command again to ask them again")
    nimg = summary.get("samples_with_image_problems", 0)
    if nimg:
        lines.append(
            f"  image problems   {len(summary.get('images_missing_or_undecodable', []))} images / {nimg} samples, "
            f"{summary.get('image_problem_policy')}"
        )
    masks = summary.get("gt_masks") or {}
    if masks.get("missing"):
        lines.append(f"  GT masks         {masks['missing']} of {masks['referenced']} not found (box fallback)")
    if summary.get("bad_val_lines"):
        lines.append(f"  bad val lines    {len(summary['bad_val_lines'])} (skipped, listed in eval_summary.json)")
    if summary.get("skipped_records"):
        lines.append(f"  skipped records  {len(summary['skipped_records'])} (the reference would crash on them)")
    if final:
        lines.append("")
        lines.append("  metric      value    (x100)")
        for k in ("L1", "L2", "L3", "ParseRate"):
            v = final.get(k)
            if isinstance(v, (int, float)):
                lines.append(f"  {k:<10}  {v:.4f}   {100 * v:6.2f}")
    return "\n".join(lines)
