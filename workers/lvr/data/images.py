"""Image sources for training records: local folders or s3:// (MinIO) prefixes, with a local download cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, TypeVar

from PIL import Image

from .. import storage as store
from .errors import DataError

Out = TypeVar("Out")


def resolve_folder(image_folder: str, images_uri: str | None, data_uri: str) -> str:
    """Where a dataset's relative image paths live.

    Absolute paths and URIs are used as they are; a relative `image_folder` is taken relative to the spec's
    `data.imagesUri` when given, else to the folder of the records / meta file.
    """
    if store.is_s3(image_folder) or os.path.isabs(image_folder) or image_folder.startswith("file://"):
        return image_folder
    if images_uri:
        return store.join(images_uri, image_folder) if image_folder else images_uri
    base = data_uri.rsplit("/", 1)[0] if "/" in data_uri else "."
    return store.join(base, image_folder) if image_folder else base


def cache_dir() -> Path:
    return Path(os.environ.get("LVR_CACHE_DIR", "/tmp/lvr-cache")) / "images"


def _local_image(uri: str) -> Path:
    """Local path of one image; an s3:// image is downloaded once into the cache."""
    if not store.is_s3(uri):
        return store.local_path(uri)
    local = cache_dir() / hashlib.sha256(uri.encode()).hexdigest()[:32]
    if not local.exists():
        tmp = local.with_name(local.name + f".{os.getpid()}.part")
        store.download_file(uri, tmp)
        os.replace(tmp, local)
    return local


def _read_image(folder: str, rel: str, read: Callable[[Image.Image], Out], *, source: str, index: int) -> Out:
    """`read(image)` on one opened record image; a missing or unreadable file is a DataError naming the record."""
    uri = rel if (store.is_s3(rel) or os.path.isabs(rel)) else store.join(folder, rel)
    try:
        with Image.open(_local_image(uri)) as im:
            return read(im)
    except DataError:
        raise
    except Exception as e:  # missing object, unreadable file
        raise DataError(f"cannot load image {uri!r} ({type(e).__name__}: {e})", source=source, index=index,
                        field="image") from e


def open_image(folder: str, rel: str, *, source: str, index: int) -> Image.Image:
    """Open one record image as RGB (its pixels keep the file's orientation and size: no EXIF transpose)."""
    return _read_image(folder, rel, lambda im: im.convert("RGB"), source=source, index=index)


def image_size(folder: str, rel: str, *, source: str, index: int) -> tuple[int, int]:
    """(width, height) of `open_image(folder, rel)` from the file's header alone (no pixel decode)."""
    return _read_image(folder, rel, lambda im: im.size, source=source, index=index)
