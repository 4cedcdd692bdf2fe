"""Tokenizers: the checkpoint-compatible loader and a builder for small in-process tokenizers.

Rex-Omni / SceneParser checkpoints (docs/reference.md, *tokenizer*) reuse the ids of the last 1,000
ordinary BPE pieces for the coordinate tokens: ``<k>`` has id ``150643 + k`` and the Qwen specials
start at 151643. The mapping exists only in ``tokenizer_config.json`` (``added_tokens_decoder``);
the checkpoint ships ``vocab.json`` + ``merges.txt`` and no ``tokenizer.json``. transformers 5.x
(and every fast tokenizer) appends the added tokens after the vocabulary instead, renumbering every
coordinate and special token by +1000. :func:`load_tokenizer` detects that layout and builds, once,
a fast tokenizer with the original ids, cached as a ``tokenizer.json`` keyed by the checkpoint's
tokenizer files.

The converted tokenizer reproduces the slow ``Qwen2Tokenizer`` of transformers 4.51.3:

* NFC normalisation of the input (the slow tokenizer's ``prepare_for_tokenization``);
* Qwen's pre-tokenizer regex, byte-level BPE with the checkpoint's merges (all of them: a rare
  piece whose id was reused still encodes to that id, as in the slow tokenizer);
* added tokens matched before BPE (longest match), keeping their ids;
* the 1,000 reused ids decode as ``<k>`` (added tokens win over the vocabulary when decoding).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

from sceneparser import prompts
from sceneparser.errors import MissingDependencyError, ModelLoadError
from sceneparser.io import write_json, write_text

#: Qwen2 / Qwen2.5 pre-tokenizer split pattern (the slow tokenizer's ``PRETOKENIZE_REGEX``).
QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: The 14 Qwen2.5(-VL) special tokens, in id order (151643 … 151656 on the real vocabulary).
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

NUM_COORD_TOKENS = 1000
#: Id of ``<0>`` in the Rex-Omni layout on the full Qwen vocabulary.
REX_OMNI_COORD_BASE = 150643

#: ChatML template (what Qwen2.5-VL checkpoints carry), stored with our tokenizers so that a saved
#: model directory is complete. The package itself renders prompts with ``sceneparser.prompts``.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# A small corpus for in-process BPE training: the prompt banks, the target JSON vocabulary and
# some everyday object / part / action words, so that prompts and targets tokenise compactly.
_EXTRA_WORDS = (
    "objects name bbox parts part_name affordances action point has_part has_affordance "
    "mug cup handle lid body toaster lever slot knob drawer door cabinet chair seat backrest leg "
    "table top bottle cap kettle spout button laptop screen keyboard scissors blade phone "
    "grasp hold push pull press open close lift pour turn rotate twist sit place cut type "
    "the a of and in on to with this image return JSON object only"
)


def _default_corpus() -> list[str]:
    corpus = list(prompts.OBJECT_PROMPTS_WHEN_AVAILABLE) + list(prompts.SCENE_PROMPTS)
    corpus += [prompts.JSON_ONLY_PREFIX, prompts.SYSTEM_PROMPT_TRAINING, _EXTRA_WORDS]
    corpus.append(
        '{"objects": [{"name": "mug", "bbox": "", "parts": [{"part_name": "handle", "bbox": "", '
        '"affordances": [{"action": "grasp", "point": ""}]}]}]}'
    )
    return corpus


def _qwen_pipeline(tokenizer) -> None:
    """Set Qwen's normaliser, pre-tokenizer and decoder on a ``tokenizers.Tokenizer``."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)


def _wrap(tokenizer_object, chat_template: str | None = CHAT_TEMPLATE):
    """Wrap a ``tokenizers.Tokenizer`` with Qwen's eos/pad conventions."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    tok.padding_side = "left"
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def build_small_tokenizer(
    corpus: Iterable[str] | None = None,
    vocab_size: int = 400,
    *,
    num_coord_tokens: int = NUM_COORD_TOKENS,
    specials: Sequence[str] = QWEN_SPECIAL_TOKENS,
):
    """A small byte-level BPE tokenizer with Qwen's pipeline, ``<0>``…``<999>`` and the Qwen specials.

    The BPE is trained in-process (deterministic for a given corpus). The id layout mirrors the real
    checkpoint's order: ordinary BPE pieces, then the coordinate tokens, then the specials. Every
    added token is *special*, as in Rex-Omni (decode with ``skip_special_tokens=False``).
    """
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers

    texts = list(corpus) if corpus is not None else _default_corpus()
    bpe = Tokenizer(models.BPE(unk_token=None))
    _qwen_pipeline(bpe)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts * 4, trainer=trainer)
    coords = [AddedToken(f"<{i}>", special=True, normalized=False) for i in range(num_coord_tokens)]
    bpe.add_special_tokens(coords)
    bpe.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return _wrap(bpe)


# --------------------------------------------------------------------------------------------
# Loading a checkpoint's tokenizer
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc


def added_tokens_from_config(config: dict) -> dict[int, dict]:
    """``added_tokens_decoder`` of a ``tokenizer_config.json`` as ``{id: entry}``."""
    out: dict[int, dict] = {}
    for key, entry in (config.get("added_tokens_decoder") or {}).items():
        if isinstance(entry, str):
            entry = {"content": entry}
        out[int(key)] = dict(entry)
    return out


def detect_layout(path: str | os.PathLike) -> str:
    """``"reused-ids"`` for a Rex-Omni-style checkpoint, ``"tokenizer-json"`` otherwise.

    Reused ids: ``tokenizer_config.json`` declares added tokens whose ids fall inside the BPE
    vocabulary (``vocab.json``), i.e. added tokens that take over ordinary pieces' ids.
    """
    path = Path(path)
    cfg_path = path / "tokenizer_config.json"
    vocab_path = path / "vocab.json"
    if cfg_path.is_file() and vocab_path.is_file():
        added = added_tokens_from_config(_read_json(cfg_path))
        if added:
            vocab = _read_json(vocab_path)
            size = len(vocab)
            if any(i < size and vocab.get(entry.get("content")) != i for i, entry in added.items()):
                return "reused-ids"
    if (path / "tokenizer.json").is_file():
        return "tokenizer-json"
    if vocab_path.is_file() and (path / "merges.txt").is_file():
        return "vocab-merges"
    return "missing"


def _load_merges(path: Path) -> list[tuple[str, str]]:
    merges = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line or line.startswith("#version"):
                continue
            a, _, b = line.partition(" ")
            merges.append((a, b))
    return merges


def convert_vocab_merges(path: str | os.PathLike, out_file: str | os.PathLike) -> None:
    """Build a fast ``tokenizer.json`` with the checkpoint's own ids from vocab/merges/config."""
    from tokenizers import AddedToken, Tokenizer, models

    path = Path(path)
    vocab = _read_json(path / "vocab.json")
    merges = _load_merges(path / "merges.txt")
    config = _read_json(path / "tokenizer_config.json") if (path / "tokenizer_config.json").is_file() else {}
    added = added_tokens_from_config(config)
    # Every added token must exist in the model vocabulary at its declared id so that
    # ``add_special_tokens`` keeps that id. A reused id then has two strings in the vocabulary
    # (the original piece, still produced by the merges, and the added token's content): both
    # encode to the same id, as in the slow tokenizer; decoding prefers the added token.
    for i, entry in added.items():
        vocab[entry["content"]] = i
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False))
    _qwen_pipeline(bpe)
    tokens = []
    for i in sorted(added):
        e = added[i]
        tokens.append(
            AddedToken(
                e["content"],
                single_word=bool(e.get("single_word", False)),
                lstrip=bool(e.get("lstrip", False)),
                rstrip=bool(e.get("rstrip", False)),
                normalized=bool(e.get("normalized", False)),
                special=bool(e.get("special", True)),
            )
        )
    bpe.add_special_tokens(tokens)
    # check: every added token kept its id
    wrong = [(e["content"], i, bpe.token_to_id(e["content"])) for i, e in added.items() if bpe.token_to_id(e["content"]) != i]
    if wrong:
        raise ModelLoadError(f"tokenizer conversion failed to keep added-token ids, e.g. {wrong[:3]}")
    # ``Tokenizer.save`` writes the BPE model from its id -> string table, which holds only one of
    # the two strings of a reused id (and then writes merges that name the wrong one). Write the
    # model's vocabulary and merges ourselves: a JSON vocabulary may map two strings to one id,
    # and loading it rebuilds exactly the in-memory tokenizer above.
    data = json.loads(bpe.to_str())
    data["model"]["vocab"] = vocab
    data["model"]["merges"] = [[a, b] for a, b in merges]
    write_json(out_file, data, indent=None)


def repaired_tokenizer_json(backend) -> str:
    """The JSON of a ``tokenizers.Tokenizer``, correct even when two strings share one BPE id.

    ``Tokenizer.save`` / ``to_str`` write the BPE merges through the model's id -> string table,
    which holds one string per id; for a reused id that is the coordinate token, so the merges that
    build the original piece come out naming ``<k>`` and the file no longer loads. This puts the
    full vocabulary (both strings) and the original pieces in the merges back.
    """
    data = json.loads(backend.to_str())
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        return json.dumps(data, ensure_ascii=False)
    full = backend.get_vocab(with_added_tokens=False)
    by_id: dict[int, list[str]] = {}
    for piece, i in full.items():
        by_id.setdefault(i, []).append(piece)
    added = {t["content"] for t in data.get("added_tokens") or []}
    fix: dict[str, str] = {}
    for pieces in by_id.values():
        if len(pieces) < 2:
            continue
        originals = [p for p in pieces if p not in added]
        if len(originals) == 1:
            for p in pieces:
                if p in added:
                    fix[p] = originals[0]
    if not fix:
        return json.dumps(data, ensure_ascii=False)
    merges = []
    for m in model.get("merges") or []:
        a, b = (m.split(" ", 1) if isinstance(m, str) else m)
        merges.append([fix.get(a, a), fix.get(b, b)])
    model["merges"] = merges
    model["vocab"] = full
    return json.dumps(data, ensure_ascii=False)


def save_tokenizer(tokenizer, path: str | os.PathLike) -> Path:
    """``tokenizer.save_pretrained(path)`` with a ``tokenizer.json`` that reloads with the same ids.

    Needed for checkpoint tokenizers with reused ids (see :func:`repaired_tokenizer_json`); for any
    other tokenizer it is the same as ``save_pretrained``. Tokenizers returned by
    :func:`load_tokenizer` already do this in their own ``save_pretrained``.
    """
    path = Path(path)
    tokenizer.save_pretrained(str(path))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and (path / "tokenizer.json").is_file():
        write_text(path / "tokenizer.json", repaired_tokenizer_json(backend))
    return path


def _checkpoint_tokenizer_class():
    """``PreTrainedTokenizerFast`` whose ``save_pretrained`` writes a reloadable ``tokenizer.json``."""
    from transformers import PreTrainedTokenizerFast

    class CheckpointTokenizerFast(PreTrainedTokenizerFast):
        def save_pretrained(self, save_directory, *args, **kwargs):
            out = super().save_pretrained(save_directory, *args, **kwargs)
            d = Path(save_directory)
            if (d / "tokenizer.json").is_file():
                write_text(d / "tokenizer.json", repaired_tokenizer_json(self.backend_tokenizer))
            cfg = d / "tokenizer_config.json"
            if cfg.is_file():  # name the stock class so that any loader (vLLM, AutoTokenizer) finds it
                data = json.loads(cfg.read_text(encoding="utf-8"))
                data["tokenizer_class"] = PreTrainedTokenizerFast.__name__
                write_text(cfg, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
            return out

    return CheckpointTokenizerFast


def default_cache_dir() -> Path:
    root = os.environ.get("SCENEPARSER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "sceneparser"
    )
    return Path(root) / "tokenizers"


def _fingerprint(path: Path) -> str:
    h = hashlib.sha256(b"sceneparser-tokenizer-v1")
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        f = path / name
        h.update(name.encode())
        if f.is_file():
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:32]


def _apply_config(tok, config: dict) -> None:
    """Carry eos/pad/chat template/length settings from ``tokenizer_config.json``."""

    def _content(v):
        return v.get("content") if isinstance(v, dict) else v

    eos = _content(config.get("eos_token"))
    pad = _content(config.get("pad_token"))
    if eos:
        tok.eos_token = eos
    if pad:
        tok.pad_token = pad
    if config.get("chat_template") and isinstance(config["chat_template"], str):
        tok.chat_template = config["chat_template"]
    tok.padding_side = "left"


def load_tokenizer(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None):
    """Load a model directory's tokenizer with the checkpoint's ids (a ``PreTrainedTokenizerFast``).

    * Rex-Omni layout (reused ids, see :func:`detect_layout`): converted once from
      ``vocab.json`` / ``merges.txt`` / ``tokenizer_config.json`` into a cached ``tokenizer.json``
      under ``cache_dir`` (default ``$SCENEPARSER_CACHE/tokenizers`` or
      ``~/.cache/sceneparser/tokenizers``), keyed by a hash of those files. The checkpoint
      directory is never modified. A ``tokenizer.json`` shipped next to such a config is ignored,
      because a transformers-5 save of it has the renumbered ids.
    * Otherwise ``tokenizer.json`` is loaded as is (our own model directories).
    """
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    layout = detect_layout(path)
    config = _read_json(path / "tokenizer_config.json") if (path / "tokenizer_config.json").is_file() else {}
    if layout == "missing":
        raise ModelLoadError(
            f"{path} has no tokenizer: expected tokenizer.json, or vocab.json + merges.txt + tokenizer_config.json"
        )
    if layout in ("reused-ids", "vocab-merges"):
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        tok_file = cache / _fingerprint(path) / "tokenizer.json"
        if not tok_file.is_file():
            convert_vocab_merges(path, tok_file)
    else:
        tok_file = path / "tokenizer.json"
    cls = _checkpoint_tokenizer_class() if layout in ("reused-ids", "vocab-merges") else PreTrainedTokenizerFast
    try:
        tok = cls(tokenizer_file=str(tok_file), clean_up_tokenization_spaces=False)
    except Exception as exc:  # corrupt file
        raise ModelLoadError(f"cannot load tokenizer {tok_file}: {exc}") from exc
    _apply_config(tok, config)
    for name in ("chat_template.jinja",):
        f = path / name
        if f.is_file() and not tok.chat_template:
            tok.chat_template = f.read_text(encoding="utf-8")
    if tok.eos_token is None and tok.convert_tokens_to_ids("<|im_end|>") is not None:
        tok.eos_token = "<|im_end|>"
    if tok.pad_token is None:
        tok.pad_token = "<|endoftext|>"
    return tok


__all__ = [
    "CHAT_TEMPLATE",
    "NUM_COORD_TOKENS",
    "QWEN_PRETOKENIZE_REGEX",
    "QWEN_SPECIAL_TOKENS",
    "REX_OMNI_COORD_BASE",
    "build_small_tokenizer",
    "convert_vocab_merges",
    "detect_layout",
    "load_tokenizer",
    "repaired_tokenizer_json",
    "save_tokenizer",
]


# --------------------------------------------------------------------------------------------
# A Rex-Omni-layout tokenizer directory from the Qwen BPE ranks (offline fixture)
# --------------------------------------------------------------------------------------------

#: Qwen2.5-VL's added tokens after its 14 special tokens (docs/reference.md, *tokenizer*), ids 151657+; not special.
QWEN_EXTRA_ADDED_TOKENS: tuple[str, ...] = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (byte-level BPE vocabularies use it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def qwen_tiktoken_file() -> Path:
    """``qwen.tiktoken`` (the Qwen BPE ranks) shipped in the PyPI package ``dashscope``."""
    try:
        import dashscope
    except ImportError as exc:
        raise MissingDependencyError("the Qwen BPE ranks come with dashscope: pip install 'sceneparser[test]'") from exc
    f = Path(dashscope.__file__).resolve().parent / "resources" / "qwen.tiktoken"
    if not f.is_file():
        raise MissingDependencyError(f"{f} not found in the installed dashscope package")
    return f


def load_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    import base64

    ranks: dict[bytes, int] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def vocab_merges_from_ranks(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocabulary and merges equivalent to tiktoken's rank-based BPE.

    Every way to split a token into two vocabulary pieces becomes a merge, ordered by the merged
    token's rank and then by the pieces' ranks (the usual tiktoken -> HF conversion).
    """
    table = bytes_to_unicode()

    def enc(b: bytes) -> str:
        return "".join(table[x] for x in b)

    vocab = {enc(tok): rank for tok, rank in ranks.items()}
    merges: list[tuple[int, int, int, str, str]] = []
    for tok, rank in ranks.items():
        if len(tok) < 2:
            continue
        for i in range(1, len(tok)):
            left, right = tok[:i], tok[i:]
            rl = ranks.get(left)
            if rl is None:
                continue
            rr = ranks.get(right)
            if rr is None:
                continue
            merges.append((rank, rl, rr, enc(left), enc(right)))
    merges.sort()
    return vocab, [(a, b) for _, _, _, a, b in merges]


def write_rex_omni_tokenizer_dir(
    out_dir: str | os.PathLike,
    ranks_file: str | os.PathLike | None = None,
    *,
    num_coord_tokens: int = NUM_COORD_TOKENS,
) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and a Rex-Omni-layout ``tokenizer_config.json``.

    Built from the real Qwen BPE ranks (default: dashscope's ``qwen.tiktoken``): the coordinate
    tokens ``<k>`` take over the ids of the last ``num_coord_tokens`` BPE pieces
    (``150643 + k``), the Qwen specials follow at 151643+, and no ``tokenizer.json`` is written,
    exactly like the released checkpoints (docs/reference.md, *tokenizer*).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranks = load_tiktoken_ranks(ranks_file or qwen_tiktoken_file())
    vocab, merges = vocab_merges_from_ranks(ranks)
    size = len(vocab)
    with open(out / "vocab.json", "w", encoding="utf-8") as fh:
        json.dump(vocab, fh, ensure_ascii=False)
    with open(out / "merges.txt", "w", encoding="utf-8") as fh:
        fh.write("#version: 0.2\n")
        fh.writelines(f"{a} {b}\n" for a, b in merges)

    def entry(content: str, special: bool = True) -> dict:
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": special}

    added: dict[str, dict] = {}
    base = size - num_coord_tokens
    for k in range(num_coord_tokens):
        added[str(base + k)] = entry(f"<{k}>")
    for i, tok in enumerate(QWEN_SPECIAL_TOKENS):
        added[str(size + i)] = entry(tok)
    for i, tok in enumerate(QWEN_EXTRA_ADDED_TOKENS):
        added[str(size + len(QWEN_SPECIAL_TOKENS) + i)] = entry(tok, special=False)
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [f"<{k}>" for k in range(num_coord_tokens)] + list(QWEN_SPECIAL_TOKENS[1:]),
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    with open(out / "tokenizer_config.json", "w", encoding="utf-8") as fh:
        json.dump(config, fh, ensure_ascii=False, indent=2)
    return out


__all__ += [
    "QWEN_EXTRA_ADDED_TOKENS",
    "load_tiktoken_ranks",
    "qwen_tiktoken_file",
    "vocab_merges_from_ranks",
    "write_rex_omni_tokenizer_dir",
]
