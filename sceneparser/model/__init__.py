"""sceneparser.model: tokenizer, processor, tiny test model and model-directory I/O.

Submodules: ``tokenizer`` (checkpoint-compatible ids), ``processor`` (smart_resize, patches,
prompt encoding, image loading), ``tiny`` (tiny random Qwen2.5-VL), ``loading`` (save/load a
model directory, device/dtype choice, default model and hub ids).
"""
