"""The training dataset: one TSV row + one query -> one supervised sample.

``SceneParserTrainDataset[i]`` returns

* ``input_ids`` (L,), ``labels`` (L,): -100 on the system turn, the user turn (with the image
  tokens) and the assistant header ``<|im_start|>assistant\\n``; the answer and ``<|im_end|>``
  (and, as the reference, the trailing ``\\n``; ``data.supervise_trailing_newline``) supervised
  (docs/reference.md, *training-data*);
* ``mm_token_type_ids`` (L,): 1 on image tokens. transformers 5 builds the M-RoPE positions from
  it (without it the model silently falls back to 1D positions, docs/reference.md, *mrope*);
* ``pixel_values`` (patches, C*2*14*14) and ``image_grid_thw`` (1, 3); with
  ``defer_pixels=True`` the sample carries ``pixel_patches`` (the uint8 patches) instead, and
  :class:`~sceneparser.training.collator.SceneParserCollator` writes the normalised floats
  straight into the batch tensor (same values, one large copy less per sample);
* ``sp_meta``: the index used, the epoch, and the samples skipped to get here (for the logs).

Queries: in ``query_mode="sample"`` (the reference) an item is an image, and the category (or a
scene query, with ``scene_prompt_ratio``) and the prompt template are drawn from
``(seed, epoch, index)``; ``set_epoch`` changes the draw, and the pseudo ``mix(p)`` policy draws
from the same triple. In ``query_mode="all"`` an item is one (image, category) pair.

Skips: unreadable rows or images, images smaller than ``min_image_side``, images without objects
and samples longer than ``max_length`` are replaced by a deterministic random other index, in a
loop (never recursion), at most ``max_skip_retries`` times; each skip is counted and logged.

The processor and tokenizer are shared, never copied per sample.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from sceneparser import prompts
from sceneparser.data.targets import (
    UNION_PSEUDO,
    PseudoPolicy,
    QueryOptions,
    build_target,
    categories,
    choice_index,
    choose_query,
    norm,
)
from sceneparser.data.hf import ParquetReader, is_parquet_dir
from sceneparser.data.tsv import TSVReader
from sceneparser.errors import InputError
from sceneparser.images import open_image
from sceneparser.model import patchify
from sceneparser.model.processor import IMAGE_PAD, UserText, chat_pieces
from sceneparser.training.config import DataSection
from sceneparser.training.grounding import class_vocabulary, token_targets

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

SKIP_REASONS = ("unreadable_row", "unreadable_image", "image_too_small", "no_objects", "too_long", "target_error")


class SkipSample(Exception):
    """Internal: this sample cannot be used; ``reason`` is one of ``SKIP_REASONS``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def pseudo_policy(policy: str, definition: str = "training"):
    """The config string (``drop`` / ``keep`` / ``mix(p)``) as a ``PseudoPolicy``."""
    try:
        parsed = PseudoPolicy.parse(policy)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if definition == "union":
        parsed = dataclasses.replace(parsed, definition=UNION_PSEUDO)
    return parsed


@dataclass(frozen=True)
class Prompt:
    """What one sample asks: a category (object query, maybe absent) or the whole scene."""

    category: str | None
    scene: bool
    template: str
    negative: bool = False

    def question(self) -> str:
        if self.scene:
            return prompts.scene_question(self.template)
        return prompts.object_question(self.category if self.category is not None else "target object", self.template)


class SceneParserTrainDataset:
    """Map-style dataset over a TSV directory (see the module docstring).

    ``reader`` is a :class:`sceneparser.data.tsv.TSVReader` (or anything with ``len`` and
    ``read(i) -> row`` with ``.image_bytes`` and ``.annotation``); ``processor`` a
    :class:`sceneparser.model.processor.SceneParserProcessor`.
    """

    def __init__(
        self,
        reader,
        processor,
        data: DataSection | None = None,
        *,
        seed: int = 42,
        defer_pixels: bool = False,
        token_classes: bool = False,
    ):
        self.reader = reader
        self.defer_pixels = defer_pixels
        self.processor = processor
        self.data = data or DataSection()
        self.seed = int(seed)
        self.epoch = 0
        self.pseudo = pseudo_policy(self.data.pseudo, self.data.pseudo_definition)
        self.skip_counts: Counter[str] = Counter()
        self._head_cache: dict[str, tuple[list[int], list[int]]] = {}
        n_images = len(reader)
        if self.data.max_images is not None:
            n_images = min(n_images, self.data.max_images)
        self.n_images = n_images
        if n_images == 0:
            raise InputError("the training TSV holds no rows")
        tok = processor.tokenizer
        self._im_start = tok.convert_tokens_to_ids("<|im_start|>")
        self._im_end = tok.convert_tokens_to_ids("<|im_end|>")
        self._header = tok("assistant\n", add_special_tokens=False)["input_ids"]
        self._header_short = tok("assistant", add_special_tokens=False)["input_ids"]
        self.items: list[tuple[int, str | None]] | None = None
        self.vocabulary: tuple[str, ...] = ()
        #: {class name: id} of the token-class targets (``token_classes=True``; 0 is the background)
        self.class_index: dict[str, int] = {}
        per_image = None
        if token_classes:
            per_image = self._scan_categories()
            key = self._class_key()
            self.class_index = class_vocabulary(key(c) for names in per_image.values() for c in names)
            if not self.class_index:
                raise InputError("no image in the training TSV has a named object: no token classes to learn")
        if self.data.query_mode == "all" or self.data.negative_ratio > 0 or self.data.unknown_name_ratio > 0:
            per_image = per_image if per_image is not None else self._scan_categories()
            self.vocabulary = tuple(sorted({c for names in per_image.values() for c in names}))
            if self.data.query_mode == "all":
                self.items = [(i, c) for i, names in sorted(per_image.items()) for c in names]
                if not self.items:
                    raise InputError("no image in the training TSV has a named object: nothing to train on")

    def _class_key(self):
        """How an object name becomes its token-class key (normalised when categories are case-insensitive)."""
        if self.data.case_insensitive_categories:
            return norm
        return lambda name: name

    # ---- size and epoch ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else self.n_images

    def set_epoch(self, epoch: int) -> None:
        """The query draw and the pseudo mix depend on the epoch (called by the trainer)."""
        self.epoch = int(epoch)

    def _scan_categories(self) -> dict[int, list[str]]:
        """Categories of every image (reads the annotations once; rows that fail are left out)."""
        read_ann = getattr(self.reader, "read_annotation_line", None)
        out: dict[int, list[str]] = {}
        for i in range(self.n_images):
            try:
                ann = read_ann(i)[1] if read_ann is not None else self.reader.read(i).annotation
            except Exception as exc:  # a corrupt row is skipped at sample time too
                self._note_skip("unreadable_row", i, str(exc))
                continue
            if isinstance(ann, dict):
                out[i] = categories(ann, case_insensitive=self.data.case_insensitive_categories)
        return out

    # ---- queries -------------------------------------------------------------------------

    def draw_prompt(self, annotation: dict, index: int, category: str | None = None) -> Prompt:
        """The query of item ``index`` this epoch (deterministic in ``(seed, epoch, index)``)."""
        if category is not None:  # query_mode "all": the item is the category
            query_category, scene, negative = category, False, False
        else:
            options = QueryOptions(
                scene_ratio=self.data.scene_prompt_ratio,
                negative_ratio=self.data.negative_ratio,
                case_insensitive=self.data.case_insensitive_categories,
                vocabulary=self.vocabulary,
                unknown_ratio=self.data.unknown_name_ratio,
            )
            q = choose_query(annotation, seed=self.seed, epoch=self.epoch, index=index, options=options)
            if q.category is None and not q.scene:
                raise SkipSample("no_objects", "no named object")
            query_category, scene, negative = q.category, q.scene, q.negative
        bank = prompts.SCENE_PROMPTS if scene else prompts.OBJECT_PROMPTS_WHEN_AVAILABLE
        template = bank[choice_index(len(bank), self.seed, self.epoch, index, "template")]
        return Prompt(query_category, scene, template, negative)

    # ---- one sample ------------------------------------------------------------------------

    def build(self, index: int) -> dict[str, Any]:
        """Sample ``index`` without skip handling (raises :class:`SkipSample`)."""
        image_index, category = self.items[index] if self.items is not None else (index, None)
        try:
            row = self.reader.read(image_index)
            annotation = row.annotation
            image_bytes = row.image_bytes
        except Exception as exc:
            raise SkipSample("unreadable_row", f"row {image_index}: {type(exc).__name__}: {exc}") from None
        if not isinstance(annotation, dict):
            raise SkipSample("unreadable_row", f"row {image_index}: annotation is not a JSON object")
        if not annotation.get("objects") and self.data.negative_ratio == 0 and self.data.unknown_name_ratio == 0:
            raise SkipSample("no_objects", f"row {image_index}")
        query = self.draw_prompt(annotation, index, category)
        try:
            image = open_image(image_bytes)
        except Exception as exc:
            raise SkipSample("unreadable_image", f"row {image_index}: {exc}") from None
        width, height = image.size
        if min(width, height) < self.data.min_image_side:
            raise SkipSample("image_too_small", f"row {image_index}: {width}x{height}")

        try:
            answer = build_target(
                annotation,
                width,
                height,
                None if query.scene else query.category,
                scene=query.scene,
                pseudo=self.pseudo,
                seed=self.seed,
                epoch=self.epoch,
                index=index,
                case_insensitive=self.data.case_insensitive_categories,
            )
        except Exception as exc:
            raise SkipSample("target_error", f"row {image_index}: {type(exc).__name__}: {exc}") from None

        proc = self.processor
        image_proc = proc.image_processor
        n_image_tokens = image_proc.num_image_tokens(width, height)
        pieces = chat_pieces(query.question(), layout="training", answer=answer)
        ids = self.encode(pieces, n_image_tokens)
        if len(ids) > self.data.max_length:
            raise SkipSample("too_long", f"row {image_index}: {len(ids)} > {self.data.max_length} tokens")
        labels = self.labels_for(ids)
        input_ids = torch.tensor(ids, dtype=torch.long)
        sample = {
            "input_ids": input_ids,
            "labels": torch.tensor(labels, dtype=torch.long),
            "mm_token_type_ids": (input_ids == proc.image_token_id).long(),
        }
        deferred = patchify.patch_bytes(image_proc, image) if self.defer_pixels else None
        if deferred is not None:  # the collator normalises straight into the batch tensor
            sample["pixel_patches"] = torch.from_numpy(deferred[0])
            grid = deferred[1]
        else:
            pixel_values, grid = patchify.patchify(image_proc, image)
            sample["pixel_values"] = torch.from_numpy(pixel_values)
        sample["image_grid_thw"] = torch.tensor([grid], dtype=torch.long)
        if self.class_index:
            m = image_proc.merge_size
            classes, boxes = token_targets(
                annotation.get("objects") or [], width, height, grid[1] // m, grid[2] // m, self.class_index,
                name_key=self._class_key(),
            )
            sample["token_classes"] = torch.tensor(classes, dtype=torch.long)
            sample["token_boxes"] = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        return sample

    def encode(self, pieces: Sequence[str], n_image_tokens: int) -> list[int]:
        """``processor.encode(pieces, [n_image_tokens])``, with the static prompt head cached.

        The processor tokenises the text on each side of ``<|image_pad|>`` separately; the text
        before the question (system turn, user header, image markers) is the same for every
        sample, so its two parts are tokenised once.
        """
        proc = self.processor
        head = pieces[0] if pieces else ""
        if len(pieces) < 2 or isinstance(head, UserText) or head.count(IMAGE_PAD) != 1:
            return proc.encode(pieces, [n_image_tokens])
        cached = self._head_cache.get(head)
        if cached is None:
            left, right = head.split(IMAGE_PAD)
            cached = self._head_cache[head] = (proc.encode([left]) if left else [], proc.encode([right]) if right else [])
        return cached[0] + [proc.image_token_id] * n_image_tokens + cached[1] + proc.encode(list(pieces[1:]))

    def labels_for(self, ids: Sequence[int]) -> list[int]:
        """-100 up to and including the last ``<|im_start|>assistant\\n``; the answer supervised."""
        ids = list(ids)
        try:
            start = len(ids) - 1 - ids[::-1].index(self._im_start)
        except ValueError:
            raise SkipSample("target_error", "no assistant turn in the sample") from None
        head = self._header
        if ids[start + 1 : start + 1 + len(head)] == head:
            first = start + 1 + len(head)
        else:  # "\n" merged into the answer's first token: mask "assistant" only
            first = start + 1 + len(self._header_short)
        labels = [IGNORE_INDEX] * first + ids[first:]
        if not self.data.supervise_trailing_newline:
            try:
                end = len(ids) - 1 - ids[::-1].index(self._im_end)
            except ValueError:
                end = len(ids) - 1
            for k in range(end + 1, len(ids)):
                labels[k] = IGNORE_INDEX
        return labels

    # ---- skip handling ----------------------------------------------------------------------

    def _note_skip(self, reason: str, index: int, detail: str) -> None:
        self.skip_counts[reason] += 1
        n = sum(self.skip_counts.values())
        if n <= 20 or n % 100 == 0:
            logger.warning("skipping training sample %d (%s): %s [%d skipped so far in this process]", index, reason, detail, n)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        skipped: Counter[str] = Counter()
        candidate = index
        for attempt in range(self.data.max_skip_retries + 1):
            try:
                sample = self.build(candidate)
            except SkipSample as skip:
                skipped[skip.reason] += 1
                self._note_skip(skip.reason, candidate, skip.detail)
                candidate = choice_index(len(self), self.seed, self.epoch, index, f"skip-{attempt}")
                continue
            sample["sp_meta"] = {
                "index": index,
                "used_index": candidate,
                "epoch": self.epoch,
                "skipped": dict(skipped),
            }
            return sample
        raise InputError(
            f"{self.data.max_skip_retries + 1} samples in a row could not be used "
            f"(reasons: {dict(skipped)}); the training data is probably broken or max_length is too small"
        )


def check_tsv_consistency(reader) -> None:
    """Cheap start-up check that the three TSV files belong together (clear message if not).

    Counts the annotation lines against the lineidx and reads the first, middle and last rows,
    checking that each annotation's image offset starts an image line (its first column is its
    own offset). A full scan is ``sceneparser.data.tsv.validate_tsv``.
    """
    n = len(reader)
    ann_path, img_path, idx_path = reader.annotations_tsv, reader.images_tsv, reader.lineidx
    hint = "the files do not belong together; re-create them with `sceneparser convert`"
    with open(ann_path, "rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    if lines != n:
        raise InputError(f"{idx_path} lists {n} rows but {ann_path} has {lines} lines: {hint}")
    img_size = img_path.stat().st_size
    with open(img_path, "rb") as img_fh:
        for i in sorted({0, n // 2, n - 1}):
            try:
                offset, _ = reader.read_annotation_line(i)
            except InputError as exc:
                raise InputError(f"{exc}: {hint}") from None
            if not 0 <= offset < img_size:
                raise InputError(f"row {i} of {ann_path} points at byte {offset}, past the end of {img_path}: {hint}")
            img_fh.seek(offset)
            head = img_fh.read(32).split(b"\t", 1)[0]
            if head != str(offset).encode():
                raise InputError(f"row {i} of {ann_path} points at byte {offset} of {img_path}, which is not an image line: {hint}")


def build_dataset(
    tsv_dir, processor, data: DataSection, *, seed: int = 42, defer_pixels: bool = False, token_classes: bool = False
) -> SceneParserTrainDataset:
    """Open the TSV directory; missing or mismatched files fail here, with a clear message.

    A folder of Parquet shards written by :func:`sceneparser.data.hf.write_parquet` (no
    ``images.tsv``) is read instead with :class:`sceneparser.data.hf.ParquetReader`: same rows,
    same targets."""
    if is_parquet_dir(tsv_dir):
        reader = ParquetReader(tsv_dir)
        if len(reader) == 0:
            raise InputError(f"the Parquet shards in {tsv_dir} hold no rows")
        return SceneParserTrainDataset(
            reader, processor, data, seed=seed, defer_pixels=defer_pixels, token_classes=token_classes
        )
    reader = TSVReader(tsv_dir)
    if len(reader) == 0:
        raise InputError(f"the training TSV in {tsv_dir} holds no rows")
    check_tsv_consistency(reader)
    return SceneParserTrainDataset(
        reader, processor, data, seed=seed, defer_pixels=defer_pixels, token_classes=token_classes
    )


__all__ = [
    "IGNORE_INDEX",
    "Prompt",
    "SKIP_REASONS",
    "SceneParserTrainDataset",
    "SkipSample",
    "build_dataset",
    "check_tsv_consistency",
    "pseudo_policy",
]
