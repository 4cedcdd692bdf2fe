"""The transformers inference backend: batched greedy decoding with prefix reuse.

:class:`TransformersBackend` implements the :class:`~sceneparser.inference.types.Backend` contract
(``generate(requests) -> list[GenerationOutput]``). Decoding follows the reference settings
(docs/reference.md, *decoding*): greedy, repetition
penalty 1.05 over prompt + generated tokens, stop at ``<|im_end|>`` (and ``<|endoftext|>``) and at
the string ``<0><0><0><0>`` (the stop string is cut from the text, as vLLM does), at most 2048 new
tokens and 4096 tokens of context (prompt + output). All of it is configurable.

Speed:

* **batching** — requests run in batches (left padding), one decode step for the whole batch;
* **prefix reuse** — queries on the same image share the system turn + image prefix: the vision
  tower and the prefix prefill run once per image, and its KV cache is copied to every query of
  that image. Each query then appends only its question (pads sit between prefix and question,
  masked out; positions continue from the prefix, so every query sees exactly the positions of
  an unshared run).

The decode loop is our own (not ``model.generate``) so that positions (3D M-RoPE), masks and the
shared cache are explicit; a test checks it against ``model.generate`` token for token.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field, replace
from typing import Hashable, Sequence

from sceneparser.inference.token_progress import TokenTicker
from sceneparser.inference.types import Backend, GenerationOutput, GenerationRequest, GenerationSettings
from sceneparser.model.loading import load_model_dir
from sceneparser.model.processor import chat_pieces, split_prefix
from sceneparser.model.tokenizer import bytes_to_unicode

@dataclass
class _Prepared:
    index: int
    request: GenerationRequest
    prefix: list[str]
    suffix: list[str]
    full: list[str]


@dataclass
class _Row:
    """A sequence being decoded."""

    index: int
    prompt_ids: list[int]
    limit: int
    max_new: int  # this request's cap (limit is lower when the context runs out first)
    request: GenerationRequest
    generated: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None
    emitted: int = 0  # characters already handed to request.on_text
    generator: object | None = None  # torch.Generator of a sampled request


def mrope_positions(ids: Sequence[int], image_token_id: int, grids: Sequence[Sequence[int]], merge_size: int):
    """3D M-RoPE positions ``(3, len(ids))`` of one unpadded sequence, and the next free position.

    Text tokens advance all three axes together; each run of image tokens is one image of grid
    ``(t, h, w)`` laid out as ``(t, h/merge, w/merge)`` from the current position, after which
    text continues at ``start + max(h, w)/merge`` (transformers' ``get_rope_index`` for images).
    """
    import torch

    pos = torch.empty((3, len(ids)), dtype=torch.long)
    cur = 0
    i = 0
    g = 0
    n = len(ids)
    while i < n:
        if ids[i] != image_token_id:
            j = i
            while j < n and ids[j] != image_token_id:
                j += 1
            pos[:, i:j] = torch.arange(cur, cur + j - i).unsqueeze(0)
            cur += j - i
            i = j
            continue
        t, h, w = (int(v) for v in grids[g])
        g += 1
        lh, lw = h // merge_size, w // merge_size
        count = t * lh * lw
        tt = torch.arange(t).view(-1, 1, 1).expand(t, lh, lw).reshape(-1)
        hh = torch.arange(lh).view(1, -1, 1).expand(t, lh, lw).reshape(-1)
        ww = torch.arange(lw).view(1, 1, -1).expand(t, lh, lw).reshape(-1)
        pos[0, i : i + count] = tt + cur
        pos[1, i : i + count] = hh + cur
        pos[2, i : i + count] = ww + cur
        cur += max(lh, lw)
        i += count
    return pos, cur


class TransformersBackend(Backend):
    """Batched greedy generation with a ``Qwen2_5_VLForConditionalGeneration``."""

    def __init__(self, model, processor, settings: GenerationSettings | None = None, **overrides):
        self.model = model
        self.processor = processor
        settings = settings or GenerationSettings()
        self.settings = replace(settings, **overrides) if overrides else settings
        tok = processor.tokenizer
        self.stop_ids = sorted(
            {
                i
                for i in (tok.convert_tokens_to_ids(t) for t in self.settings.stop_tokens)
                if i is not None and i != tok.unk_token_id
            }
        )
        self._cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._stop_window = max((len(s) for s in self.settings.stop_strings), default=0) + 4

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None, **generation) -> "TransformersBackend":
        settings = GenerationSettings.from_kwargs(**generation)
        model, processor = load_model_dir(path, device=device, dtype=dtype)
        return cls(model, processor, settings)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def with_settings(self, **overrides) -> "TransformersBackend":
        """A backend sharing the model with some settings changed."""
        return TransformersBackend(self.model, self.processor, replace(self.settings, **overrides))

    # ------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = False) -> list[GenerationOutput]:
        """One output per request: text (special tokens kept, stop token/string removed), token ids,
        finish reason and timings."""
        s = self.settings
        prepared = []
        for i, r in enumerate(requests):
            full = chat_pieces(r.question, layout=s.layout, system=s.system)
            prefix, suffix = split_prefix(full)
            prepared.append(_Prepared(i, r, prefix, suffix, full))
        outputs: list[GenerationOutput | None] = [None] * len(prepared)
        batches = self._plan_batches(prepared)
        bar = None
        if progress and len(prepared) > 1:
            from tqdm import tqdm

            bar = tqdm(total=len(prepared), desc="generate", unit="query", leave=False)
        for batch in batches:
            for out_index, out in self._run_batch(batch):
                outputs[out_index] = out
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return [o for o in outputs]  # type: ignore[misc]

    def _plan_batches(self, prepared: list[_Prepared]) -> list[list[_Prepared]]:
        bs = self.settings.batch_size
        if not self.settings.prefix_reuse:
            return [prepared[i : i + bs] for i in range(0, len(prepared), bs)]
        groups: dict[Hashable, list[_Prepared]] = {}
        for p in prepared:
            groups.setdefault(p.request.key, []).append(p)
        batches: list[list[_Prepared]] = []
        current: list[_Prepared] = []
        for group in groups.values():
            for k in range(0, len(group), bs):
                chunk = group[k : k + bs]
                if current and len(current) + len(chunk) > bs:
                    batches.append(current)
                    current = []
                current = current + chunk
        if current:
            batches.append(current)
        return batches

    # ------------------------------------------------------------------------------------

    def _forward(self, **kw):
        cache = kw.pop("cache", None)
        if cache is not None:
            kw[self._cache_kw] = cache
        out = self.model(**kw, use_cache=True, logits_to_keep=1, return_dict=True)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits[:, -1, :].float(), new_cache

    def _run_batch(self, batch: list[_Prepared]):
        import torch

        s = self.settings
        proc = self.processor
        dev = self.device
        t0 = time.perf_counter()
        reuse = s.prefix_reuse
        # units = sequences that are prefilled together with their image
        if reuse:
            unit_of: list[int] = []
            keys: dict[Hashable, int] = {}
            units: list[_Prepared] = []
            for p in batch:
                if p.request.key not in keys:
                    keys[p.request.key] = len(units)
                    units.append(p)
                unit_of.append(keys[p.request.key])
            unit_pieces = [u.prefix for u in units]
        else:
            units = list(batch)
            unit_of = list(range(len(batch)))
            unit_pieces = [u.full for u in units]
        vision = proc.image_processor([u.request.image for u in units])
        grids = vision["image_grid_thw"]
        merge = proc.image_processor.merge_size
        counts = [int(g.prod()) // (merge * merge) for g in grids]
        unit_ids = [proc.encode(pieces, [c]) for pieces, c in zip(unit_pieces, counts)]
        unit_pos = [mrope_positions(ids, proc.image_token_id, [g.tolist()], merge) for ids, g in zip(unit_ids, grids)]
        suffix_ids = [proc.encode(p.suffix) if reuse else [] for p in batch]

        rows = []
        results = []
        keep_rows = []
        for b, p in enumerate(batch):
            prompt = unit_ids[unit_of[b]] + suffix_ids[b]
            max_new = min(p.request.max_new_tokens or s.max_new_tokens, s.max_new_tokens)
            limit = min(max_new, s.max_context - len(prompt))
            if limit <= 0:
                results.append(
                    (p.index, GenerationOutput("", [], len(prompt), "prompt_too_long"))
                )
                continue
            rows.append(_Row(p.index, prompt, limit, max_new, p.request, generator=_generator(p.request)))
            keep_rows.append(b)
        if not rows:
            return results
        # drop units nobody needs any more
        needed_units = sorted({unit_of[b] for b in keep_rows})
        remap = {u: k for k, u in enumerate(needed_units)}
        pv_parts, g_parts = [], []
        offsets = [0]
        for g in grids:
            offsets.append(offsets[-1] + int(g.prod()))
        for u in needed_units:
            pv_parts.append(vision["pixel_values"][offsets[u] : offsets[u + 1]])
            g_parts.append(grids[u : u + 1])
        pixel_values = torch.cat(pv_parts).to(dev, self.model.dtype)
        grid_thw = torch.cat(g_parts).to(dev)
        u_ids = [unit_ids[u] for u in needed_units]
        u_pos = [unit_pos[u] for u in needed_units]
        row_unit = torch.tensor([remap[unit_of[b]] for b in keep_rows], dtype=torch.long)

        # ---- prefill the units (left padded)
        L = max(len(x) for x in u_ids)
        U = len(u_ids)
        ids = torch.full((U, L), proc.pad_token_id, dtype=torch.long)
        mask = torch.zeros((U, L), dtype=torch.long)
        pos = torch.ones((3, U, L), dtype=torch.long)
        next_pos = torch.zeros(U, dtype=torch.long)
        for k, (x, (pp, nxt)) in enumerate(zip(u_ids, u_pos)):
            ids[k, L - len(x) :] = torch.tensor(x)
            mask[k, L - len(x) :] = 1
            pos[:, k, L - len(x) :] = pp
            next_pos[k] = nxt
        with torch.inference_mode():
            logits, cache = self._forward(
                input_ids=ids.to(dev),
                attention_mask=mask.to(dev),
                position_ids=pos.to(dev),
                pixel_values=pixel_values,
                image_grid_thw=grid_thw,
            )
            if reuse:
                # ---- share each unit's cache with its queries, then append the questions
                sel = row_unit.to(dev)
                cache.batch_select_indices(sel)
                mask = mask[row_unit]
                sfx = [suffix_ids[b] for b in keep_rows]
                S = max(len(x) for x in sfx)
                B = len(sfx)
                sids = torch.full((B, S), proc.pad_token_id, dtype=torch.long)
                smask = torch.zeros((B, S), dtype=torch.long)
                spos = torch.ones((3, B, S), dtype=torch.long)
                start = next_pos[row_unit]
                for k, x in enumerate(sfx):
                    sids[k, S - len(x) :] = torch.tensor(x)
                    smask[k, S - len(x) :] = 1
                    spos[:, k, S - len(x) :] = torch.arange(int(start[k]), int(start[k]) + len(x)).unsqueeze(0)
                mask = torch.cat([mask, smask], dim=1)
                logits, cache = self._forward(
                    input_ids=sids.to(dev), attention_mask=mask.to(dev), position_ids=spos.to(dev), cache=cache
                )
                cur_pos = start + torch.tensor([len(x) for x in sfx], dtype=torch.long)
            else:
                cur_pos = next_pos[row_unit]
        t_prefill = time.perf_counter() - t0
        for r in rows:
            r.prefill = t_prefill  # type: ignore[attr-defined]

        # ---- greedy decoding
        vocab = logits.shape[-1]
        seen = torch.zeros((len(rows), vocab), dtype=torch.bool, device=dev)
        for k, r in enumerate(rows):
            pid = torch.tensor([t for t in r.prompt_ids if t < vocab], dtype=torch.long, device=dev)
            seen[k, pid] = True
        stop_ids = torch.tensor(self.stop_ids, dtype=torch.long, device=dev)
        mask = mask.to(dev)
        cur_pos = cur_pos.to(dev)
        active = list(range(len(rows)))
        step = 0
        t1 = time.perf_counter()
        ticker = TokenTicker()
        with torch.inference_mode():
            while True:
                scores = logits
                if s.repetition_penalty != 1.0:
                    pen = torch.where(scores < 0, scores * s.repetition_penalty, scores / s.repetition_penalty)
                    scores = torch.where(seen, pen, scores)
                if step < s.min_new_tokens and len(stop_ids):
                    scores = scores.clone()
                    scores[:, stop_ids] = float("-inf")
                next_tokens = scores.argmax(dim=-1)
                sampled = [k for k, a in enumerate(active) if rows[a].generator is not None]
                if sampled:
                    next_tokens = next_tokens.clone()
                    for k in sampled:
                        next_tokens[k] = _sample(scores[k], rows[active[k]])
                seen[torch.arange(len(active), device=dev), next_tokens] = True
                # log-probability of each chosen token under the model's own distribution
                chosen = (logits.gather(1, next_tokens.view(-1, 1)).squeeze(1) - logits.logsumexp(dim=-1)).tolist()
                toks = next_tokens.tolist()
                still = []
                for k, (a, tok) in enumerate(zip(active, toks)):
                    r = rows[a]
                    if tok in self.stop_ids and step >= s.min_new_tokens:
                        r.finish = "stop"
                        continue
                    r.generated.append(tok)
                    r.logprobs.append(chosen[k])
                    if self._hit_stop_string(r):
                        r.finish = "stop_string"
                        continue
                    if len(r.generated) >= r.limit:
                        r.finish = "length" if r.limit == r.max_new else "context"
                        continue
                    if r.request.on_text is not None and not self._stream(r, final=False):
                        r.finish = "cancelled"
                        continue
                    still.append(k)
                step += 1
                ticker.step(len(active))
                if not still:
                    break
                if len(still) < len(active):
                    keep = torch.tensor(still, dtype=torch.long, device=dev)
                    cache.batch_select_indices(keep)
                    mask = mask[keep]
                    cur_pos = cur_pos[keep]
                    seen = seen[keep]
                    next_tokens = next_tokens[keep]
                    active = [active[k] for k in still]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                logits, cache = self._forward(
                    input_ids=next_tokens.view(-1, 1),
                    attention_mask=mask,
                    position_ids=cur_pos.view(1, -1, 1).expand(3, -1, 1),
                    cache=cache,
                )
                cur_pos = cur_pos + 1
        ticker.close()
        t_decode = time.perf_counter() - t1
        tok = proc.tokenizer
        for r in rows:
            text = tok.decode(r.generated, skip_special_tokens=False)
            if r.finish == "stop_string":
                text = self._cut_stop_string(text)
            if r.request.on_text is not None and r.finish != "cancelled":
                self._stream(r, final=True, text=text)
            results.append(
                (
                    r.index,
                    GenerationOutput(
                        text=text,
                        token_ids=list(r.generated),
                        num_prompt_tokens=len(r.prompt_ids),
                        finish_reason=r.finish or "length",
                        prefill_s=t_prefill,
                        decode_s=t_decode,
                        token_logprobs=list(r.logprobs),
                        token_offsets=token_offsets(tok, r.generated),
                    ),
                )
            )
        return results

    def _stream(self, row: _Row, *, final: bool, text: str | None = None) -> bool:
        """Hand the new part of ``row``'s text to its ``on_text``; False when the callback raised.

        While generating, text that may still turn into a stop string (a suffix that is a
        prefix of one) or an incomplete character is held back, so the pieces always add up
        to the final text."""
        if text is None:
            text = self.processor.tokenizer.decode(row.generated, skip_special_tokens=False)
        end = len(text)
        if not final:
            safe = text.rstrip("\ufffd")
            hold = 0
            for st in self.settings.stop_strings:
                hold = max([hold] + [k for k in range(1, min(len(st), len(safe) + 1)) if safe.endswith(st[:k])])
            end = len(safe) - hold
        if end <= row.emitted:
            return True
        piece, row.emitted = text[row.emitted:end], end
        try:
            row.request.on_text(piece)
        except Exception:  # noqa: BLE001 - the consumer is gone (e.g. a client disconnected)
            return False
        return True

    def _hit_stop_string(self, row: _Row) -> bool:
        if not self.settings.stop_strings:
            return False
        window = self.processor.tokenizer.decode(row.generated[-self._stop_window :], skip_special_tokens=False)
        return any(st in window for st in self.settings.stop_strings)

    def _cut_stop_string(self, text: str) -> str:
        hits = [text.find(st) for st in self.settings.stop_strings if st in text]
        return text[: min(hits)] if hits else text


_BYTE_OF = {c: b for b, c in bytes_to_unicode().items()}  # byte-level BPE character -> byte


def token_offsets(tokenizer, ids: Sequence[int]) -> list[int]:
    """Where each token of ``ids`` starts in ``tokenizer.decode(ids)`` (characters).

    Byte-level pieces are turned back into their bytes, added tokens (coordinate tokens such as
    ``<12>``, control tokens) are their own text, and the offsets are counted in characters of the
    UTF-8 decoded whole, so a character split over two tokens belongs to the first."""
    added = set(getattr(tokenizer, "added_tokens_decoder", {}) or {})

    def piece_bytes(i: int, piece: str | None) -> bytes:
        if not piece:  # an id the tokenizer does not know decodes to nothing
            return b""
        if i in added or any(c not in _BYTE_OF for c in piece):
            return piece.encode("utf-8")
        return bytes(_BYTE_OF[c] for c in piece)

    offsets, chars = [], 0
    for i, piece in zip(ids, tokenizer.convert_ids_to_tokens(list(ids))):
        offsets.append(chars)
        # characters start at bytes that are not UTF-8 continuation bytes
        chars += sum(1 for b in piece_bytes(i, piece) if (b & 0xC0) != 0x80)
    return offsets


def _generator(request: GenerationRequest):
    """A seeded CPU ``torch.Generator`` for a sampled request (``None`` for greedy decoding)."""
    if request.temperature <= 0:
        return None
    import torch

    g = torch.Generator()
    if request.seed is not None:
        g.manual_seed(int(request.seed))
    else:
        g.seed()
    return g


def _sample(scores, row: _Row) -> int:
    """One token drawn from ``softmax(scores / temperature)`` restricted to the ``top_p`` nucleus."""
    import torch

    probs = torch.softmax(scores.float().cpu() / row.request.temperature, dim=-1)
    if row.request.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < row.request.top_p  # always keeps the most likely token
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=row.generator).item())


__all__ = ["TransformersBackend", "mrope_positions"]
