"""Write tests/fixtures/golden_4513: a tiny random Qwen2.5-VL saved by transformers 4.51.3, with its outputs.

The checkpoint has the real 151,936-row vocabulary and a Rex-Omni-layout tokenizer (the coordinate
tokens reuse the ids of the last 1,000 BPE pieces), but a hidden size of 8, so its bf16 weights are
about 2.5 MB. transformers 4.51.3 (the reference's pin) builds it, saves it with
``save_pretrained`` and records, for a fixed 112x112 image and prompt: the input ids and pixel
values of its processor, the last position's logits (fp32) and 24 greedy tokens.
``tests/model/test_golden_checkpoint.py`` loads it with ``sceneparser.model.loading.load_model_dir``
and asserts all of them (docs/golden_checkpoint.md).

Two environments take part, so run it from the project's environment::

    python3 -m venv --system-site-packages /tmp/venv451
    /tmp/venv451/bin/pip install transformers==4.51.3 pillow==10.4.0
    python3 scripts/make_golden_checkpoint.py --python451 /tmp/venv451/bin/python

Step 1 (this environment): the Rex-Omni-layout tokenizer files from the Qwen BPE ranks
(``dashscope``'s ``qwen.tiktoken``) and the 112x112 image (a centre crop of examples/scene.jpg,
saved as PNG: no resize happens later, so the fixture does not depend on Pillow's bicubic
filter). Step 2 (``--python451``): this script again with ``--inner``, under transformers 4.51.3.
The vocabulary files are not committed; the test writes them again from ``dashscope``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "golden_4513"
IMAGE_FILE = "image.png"
INPUTS_FILE = "inputs.safetensors"
OUTPUTS_FILE = "outputs_4513.json"
LOGITS_FILE = "last_logits_4513.safetensors"
PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>Detect every chair in the image and give its box."
    "<|im_end|>\n<|im_start|>assistant\n"
)
NEW_TOKENS = 24
SEED = 4513
PIXELS = 112 * 112


def outer(python451: str, out: Path) -> None:
    """Step 1 here, then step 2 under transformers 4.51.3."""
    from PIL import Image

    from sceneparser.model.tokenizer import write_rex_omni_tokenizer_dir

    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tokenizer"
        write_rex_omni_tokenizer_dir(tok_dir)
        image = Image.open(ROOT / "examples" / "scene.jpg").convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        crop = image.crop((left, top, left + side, top + side)).resize((112, 112), Image.Resampling.BICUBIC)
        out.mkdir(parents=True, exist_ok=True)
        crop.save(out / IMAGE_FILE)
        subprocess.run([python451, __file__, "--inner", str(tok_dir), str(out)], check=True)
    for name in ("vocab.json", "merges.txt"):  # rebuilt by the test from dashscope
        (out / name).unlink(missing_ok=True)


def inner(tok_dir: Path, out: Path) -> None:
    """Step 2, under transformers 4.51.3: build, save, run."""
    import torch
    import transformers
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2Tokenizer,
        Qwen2VLImageProcessor,
    )

    assert transformers.__version__ == "4.51.3", transformers.__version__
    tokenizer = Qwen2Tokenizer.from_pretrained(str(tok_dir))  # the slow tokenizer keeps the Rex-Omni ids
    assert tokenizer.convert_tokens_to_ids("<0>") == 150643, tokenizer.convert_tokens_to_ids("<0>")
    tid = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        vocab_size=151936,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=32768,
        rope_theta=1e6,
        rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
        tie_word_embeddings=True,
        bos_token_id=tid("<|endoftext|>"),
        eos_token_id=tid("<|im_end|>"),
        pad_token_id=tid("<|endoftext|>"),
        image_token_id=tid("<|image_pad|>"),
        video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"),
        vision_end_token_id=tid("<|vision_end|>"),
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": 8,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
            "in_channels": 3,
        },
        torch_dtype="bfloat16",
    )
    torch.manual_seed(SEED)
    model = Qwen2_5_VLForConditionalGeneration(config)
    with torch.no_grad():  # larger than the 0.02 init, so the logits differ visibly between tokens
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    model = model.to(torch.bfloat16)
    image_processor = Qwen2VLImageProcessor(min_pixels=PIXELS, max_pixels=PIXELS)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(str(out), safe_serialization=True)
    processor.save_pretrained(str(out))

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(out), torch_dtype=torch.float32).eval()
    image = Image.open(out / IMAGE_FILE).convert("RGB")
    inputs = processor(text=[PROMPT], images=[image], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0].float()
        generated = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None)
    new = generated[0, inputs["input_ids"].shape[1]:].tolist()
    save_file(
        {
            "input_ids": inputs["input_ids"].contiguous(),
            "pixel_values": inputs["pixel_values"].float().contiguous(),
            "image_grid_thw": inputs["image_grid_thw"].contiguous(),
        },
        str(out / INPUTS_FILE),
    )
    save_file({"last_logits": logits[-1].contiguous()}, str(out / LOGITS_FILE))
    record = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "pillow": __import__("PIL").__version__,
        "prompt": PROMPT,
        "seed": SEED,
        "greedy_tokens": new,
        "argmax_per_position": logits.argmax(-1).tolist(),
        "logsumexp_per_position": torch.logsumexp(logits, -1).tolist(),
    }
    (out / OUTPUTS_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python451", help="python of a virtualenv with transformers==4.51.3")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--inner", nargs=2, metavar=("TOKENIZER_DIR", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inner:
        inner(Path(args.inner[0]), Path(args.inner[1]))
        return 0
    if not args.python451:
        p.error("--python451 is required (see the module docstring)")
    if args.out.exists():
        shutil.rmtree(args.out)
    outer(args.python451, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
