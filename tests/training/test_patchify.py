"""sceneparser.model.patchify: bit-identical to ImageProcessor.patchify, alone and for a batch."""

import numpy as np
import pytest
from PIL import Image

from sceneparser.model.patchify import materialise, patch_bytes, patchify
from sceneparser.model.processor import ImageProcessor


@pytest.mark.parametrize("coord", [False, True])
@pytest.mark.parametrize("size", [(640, 480), (113, 57), (28, 300), (29, 29)])
def test_fast_patchify_is_bit_identical(size, coord):
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ip = ImageProcessor(min_pixels=3136, max_pixels=200_000, coord_channels=coord)
    expected, grid = ip.patchify(image)
    got, got_grid = patchify(ip, image)
    assert got_grid == grid and got.dtype == expected.dtype
    assert np.array_equal(got, expected)


def test_unknown_processors_fall_back():
    class Other:
        def patchify(self, image):
            return "theirs", (1, 1, 1)

    assert patchify(Other(), None) == ("theirs", (1, 1, 1))


@pytest.mark.parametrize("coord", [False, True])
def test_batch_materialise_is_bit_identical(coord):
    import torch

    rng = np.random.default_rng(5)
    ip = ImageProcessor(min_pixels=3136, max_pixels=60_000, coord_channels=coord)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in ((200, 120), (90, 160))]
    expected = np.concatenate([ip.patchify(im)[0] for im in images])
    parts = [patch_bytes(ip, im) for im in images]
    u8 = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    grids = torch.tensor([p[1] for p in parts])
    got = materialise(ip, u8, grids)
    assert got.dtype == torch.float32 and np.array_equal(got.numpy(), expected)
