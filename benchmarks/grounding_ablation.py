"""Short from-scratch training probes for the default-model recipe (issue 8, docs/default_model.md).

A plain AdamW loop over the project's own dataset, collator and model (the ``default_model``
preset's model, data and pixel range), without the Trainer's checkpointing, so that several
600-800-step variants fit on 2 CPU cores side by side. Every ``--eval-every`` steps it prints the
teacher-forced coordinate-token loss on 48 held-out samples with the right images and with the
images rotated by one inside each batch of 16: a model that grounds does worse with the wrong
image (``coord_shuf > coord``); one that learnt only the text prior does not.

    python benchmarks/grounding_ablation.py --train-tsv TSV --heldout-tsv TSV --steps 600 --out A.jsonl
    ... --set data.scene_prompt_ratio=0.5 --token-class-weight 1.0      # the current recipe's additions
    ... --soft-sigma 8 | --freeze-vision | --warmup-single 400 | --lr 5e-4 | --poly-rows 1.2

``first`` is the loss of the first coordinate of every box and point (object, part or point).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-tsv", required=True)
    p.add_argument("--heldout-tsv", required=True)
    p.add_argument("--out", required=True, help="JSON lines of the evaluations")
    p.add_argument("--set", action="append", default=[], help="override of the default_model preset")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1.5e-3, help="one learning rate for every part")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--soft-sigma", type=float, default=0.0, help="Gaussian soft labels on coordinate tokens (bins)")
    p.add_argument("--freeze-vision", action="store_true", help="keep the vision tower and merger at their init")
    p.add_argument("--warmup-single", type=int, default=0, help="first N steps on one-object images only")
    p.add_argument("--poly-rows", type=float, default=0.0,
                   help="add A*(u*d1 + 4*(u^2 - 1/12)*d2) to the rows of <k> (u = k/999 - 0.5): a linear and a "
                   "quadratic direction, so a peak at any bin is a linear readout")
    p.add_argument("--token-class-weight", type=float, default=0.0, help="the auxiliary token-class loss")
    p.add_argument("--token-box-weight", type=float, default=0.0,
                   help="the auxiliary token-box loss (L1 of the box under every image token)")
    p.add_argument("--constant-lr", action="store_true", help="no cosine decay after the warm-up")
    p.add_argument("--attn-sup", type=float, default=0.0,
                   help="attention supervision: head 0 of the last language-model layer, at every object-box "
                   "coordinate, is trained to attend to the image tokens under that object (-log of its mass "
                   "there); needs --set model.attn_implementation=eager")
    p.add_argument("--save", default=None, help="write a model directory here at the end")
    a = p.parse_args(argv)

    import torch

    from sceneparser.training.collator import SceneParserCollator
    from sceneparser.training.config import load_config
    from sceneparser.training.dataset import build_dataset
    from sceneparser.model.patchify import materialise
    from sceneparser.training.stage import apply_pixel_limits, load_initial_model
    from sceneparser.training.params import parameter_groups

    torch.set_num_threads(a.threads)
    cfg = load_config("default_model", a.set)
    torch.manual_seed(a.seed)
    model, proc = load_initial_model(cfg, "tiny")
    apply_pixel_limits(proc, cfg.data.min_pixels, cfg.data.max_pixels)
    aux = a.token_class_weight > 0 or a.token_box_weight > 0
    ds = build_dataset(a.train_tsv, proc, cfg.data, seed=42, defer_pixels=True, token_classes=aux)
    heldout = build_dataset(a.heldout_tsv, proc, cfg.data.model_copy(update={"scene_prompt_ratio": 0.0}),
                            seed=7, defer_pixels=True)
    collate = SceneParserCollator(pad_token_id=proc.pad_token_id, image_processor=proc.image_processor,
                                  pixel_format="uint8")
    ip, tok = proc.image_processor, proc.tokenizer
    c0, c999 = tok.convert_tokens_to_ids("<0>"), tok.convert_tokens_to_ids("<999>")
    if c999 - c0 != 999:
        sys.exit("the tokenizer's coordinate tokens are not consecutive")
    if a.poly_rows > 0:  # the same rows as model.tiny.coord_embedding_poly, on top of the preset's
        from sceneparser.model.tiny import polynomial_coord_rows

        polynomial_coord_rows(model, tok, a.poly_rows)
    if a.freeze_vision:
        for name, param in model.named_parameters():
            if "visual" in name:
                param.requires_grad_(False)
    groups = parameter_groups(model, learning_rate=a.lr, weight_decay=a.weight_decay)
    head = None
    if aux:
        from sceneparser.training.grounding import TokenClassHead

        head = TokenClassHead(model.config.vision_config.out_hidden_size, len(ds.class_index), seed=a.seed,
                              boxes=a.token_box_weight > 0)
        head.attach(model)
        groups.append({"params": list(head.parameters()), "lr": a.lr, "weight_decay": 0.0})
    for g in groups:
        g["base_lr"] = g["lr"]
    opt = torch.optim.AdamW(groups, lr=a.lr)

    from sceneparser.training.grounding import attention_supervision_loss
    from sceneparser.training.grounding import attention_targets as _attention_targets
    from sceneparser.training.roles import coordinate_roles

    def attention_targets(batch):
        return _attention_targets(batch["input_ids"], batch["labels"], batch["image_grid_thw"],
                                  image_token_id=proc.image_token_id, first_coord_id=c0,
                                  merge_size=ip.merge_size, tokenizer=tok)

    def attention_loss(attentions, targets):
        return attention_supervision_loss(attentions, targets)  # head 0 of the last layer

    def to_model(batch):
        out = {k: v for k, v in batch.items() if k not in ("sp_stats", "pixel_patches", "token_classes", "token_boxes")}
        out["pixel_values"] = materialise(ip, batch["pixel_patches"], batch["image_grid_thw"])
        return out

    eval_batches = [to_model(collate([heldout[i] for i in range(j, j + 16)])) for j in range(0, 48, 16)]

    def token_nll(logits, labels):
        tgt = labels[:, 1:]
        return torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), tgt.clamp(min=0),
                                                 reduction="none"), tgt

    def coord_losses(batch, shuffle):
        batch = dict(batch)
        if shuffle:
            n = batch["image_grid_thw"].shape[0]
            rows = batch["pixel_values"].shape[0] // n
            batch["pixel_values"] = batch["pixel_values"].reshape(n, rows, -1).roll(1, 0).reshape(n * rows, -1)
        labels = batch.pop("labels")
        with torch.no_grad():
            nll, tgt = token_nll(model(**batch).logits, labels)
        coord = (tgt >= c0) & (tgt <= c999)
        prev = labels[:, :-1]
        first = coord & ~((prev >= c0) & (prev <= c999))
        rest = torch.zeros_like(coord)  # the object box after its first coordinate
        for b in range(labels.shape[0]):
            for pos, role in coordinate_roles(batch["input_ids"][b].tolist(), labels[b].tolist(), c0, tok):
                if role == "object_box":
                    rest[b, pos - 1] = True
        return (nll[tgt != -100].mean().item(), nll[coord].mean().item(), nll[first].mean().item(),
                nll[rest].mean().item())

    def evaluate():
        model.eval()
        real = [coord_losses(b, False) for b in eval_batches]
        shuf = [coord_losses(b, True) for b in eval_batches]
        model.train()
        if head is not None:
            head.clear()
        mean = lambda xs, k: sum(x[k] for x in xs) / len(xs)  # noqa: E731
        return {"all": mean(real, 0), "coord": mean(real, 1), "coord_shuf": mean(shuf, 1),
                "first": mean(real, 2), "first_shuf": mean(shuf, 2), "objbox": mean(real, 3), "objbox_shuf": mean(shuf, 3)}

    rng = random.Random(a.seed)
    single = []
    if a.warmup_single:
        single = [i for i in range(len(ds)) if len(ds.reader.read(i).annotation.get("objects") or []) == 1]
    log = open(a.out, "w", encoding="utf-8")
    model.train()
    started, running, box_running, attn_running = time.time(), 0.0, 0.0, 0.0
    warm = max(1, int(0.03 * a.steps))
    for step in range(1, a.steps + 1):
        f = step / warm if step <= warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, a.steps - warm)))
        if a.constant_lr and step > warm:
            f = 1.0
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * f
        pool = single if step <= a.warmup_single and single else None
        idx = [rng.choice(pool) if pool else rng.randrange(len(ds)) for _ in range(a.batch_size)]
        raw = collate([ds[i] for i in idx])
        batch = to_model(raw)
        labels = batch.pop("labels")
        if a.attn_sup > 0:
            out = model(**batch, output_attentions=True)
            logits = out.logits
            attn_loss = attention_loss(out.attentions, attention_targets(raw))
        else:
            logits = model(**batch).logits
        nll, tgt = token_nll(logits, labels)
        if a.soft_sigma > 0:
            coord = (tgt >= c0) & (tgt <= c999)
            logp = torch.log_softmax(logits[:, :-1].float()[coord], -1)[:, c0 : c999 + 1]
            k = (tgt[coord] - c0).float()[:, None]
            q = torch.exp(-0.5 * ((torch.arange(1000.0)[None] - k) / a.soft_sigma) ** 2)
            nll = nll.clone()
            nll[coord] = -(q / q.sum(-1, keepdim=True) * logp).sum(-1)
        mask = (tgt != -100).float()
        loss = (nll * mask).sum() / mask.sum()
        if head is not None:
            cls_loss, box_loss = head.losses(raw["token_classes"], raw["token_boxes"] if a.token_box_weight > 0 else None)
            loss = loss + a.token_class_weight * cls_loss
            if box_loss is not None:
                loss = loss + a.token_box_weight * box_loss
                box_running = box_loss.item() if step == 1 else 0.95 * box_running + 0.05 * box_loss.item()
        if a.attn_sup > 0:
            loss = loss + a.attn_sup * attn_loss
            attn_running = attn_loss.item() if step == 1 else 0.95 * attn_running + 0.05 * attn_loss.item()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = loss.item() if step == 1 else 0.95 * running + 0.05 * loss.item()
        if step % a.eval_every == 0 or step == a.steps:
            row = evaluate()
            row.update(step=step, train=running, box=box_running, attn=attn_running, seconds=round(time.time() - started))
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
    if a.save:
        from sceneparser.model.loading import save_model_dir

        model.eval()
        save_model_dir(model, proc, a.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
