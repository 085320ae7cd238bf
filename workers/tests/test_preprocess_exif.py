"""lvr.preprocess.load_image applies EXIF orientation (as the TS engine does), for paths, data URLs and PIL images."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from lvr.preprocess import ImageConfig, image_to_pixel_values, load_image


def _rotated_jpeg(width: int = 84, height: int = 56) -> bytes:
    """Landscape pixels stored with EXIF orientation 6 (display: rotate 90° clockwise -> portrait)."""
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (3 * x + 5 * y) % 256], -1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    return buf.getvalue()


def test_orientation_6_is_applied_for_every_source_kind(tmp_path):
    data = _rotated_jpeg()
    path = tmp_path / "r.jpg"
    path.write_bytes(data)
    stored = Image.open(io.BytesIO(data)).convert("RGB")
    assert stored.size == (84, 56)
    expected = np.asarray(stored.transpose(Image.Transpose.ROTATE_270))  # 90° clockwise
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    for src in (str(path), f"file://{path}", url, Image.open(io.BytesIO(data))):
        img = load_image(src)
        assert img.size == (56, 84), src if isinstance(src, str) else "PIL"
        assert np.array_equal(np.asarray(img), expected)


def test_rotated_jpeg_grid_and_tokens_follow_the_displayed_orientation(tmp_path):
    path = tmp_path / "r.jpg"
    path.write_bytes(_rotated_jpeg())
    pv, grid = image_to_pixel_values(load_image(str(path)), ImageConfig())
    assert grid == (1, 6, 4)  # 84 high, 56 wide: no resize (multiples of 28)
    assert pv.shape == (24, 1176)


def test_images_without_orientation_are_unchanged():
    img = Image.fromarray(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3), "RGB")
    assert np.array_equal(np.asarray(load_image(img)), np.asarray(img))
