"""Local folders and `s3://bucket/prefix` (MinIO) for bundle sources and destinations."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

ENV_VARS = ("LVR_S3_ENDPOINT", "LVR_S3_ACCESS_KEY", "LVR_S3_SECRET_KEY")


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    u = urlparse(uri)
    return u.netloc, u.path.lstrip("/").rstrip("/")


def client():
    """MinIO client from LVR_S3_ENDPOINT / LVR_S3_ACCESS_KEY / LVR_S3_SECRET_KEY / LVR_S3_REGION."""
    from minio import Minio

    missing = [v for v in ENV_VARS if not os.environ.get(v)]
    if missing:
        raise RuntimeError(f"s3:// access needs the environment variable(s) {', '.join(missing)} "
                           "(exported by `npm test`, or `eval \"$(node scripts/stack/cli.mjs env)\"`)")
    endpoint = os.environ["LVR_S3_ENDPOINT"]
    u = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    return Minio(u.netloc, access_key=os.environ["LVR_S3_ACCESS_KEY"], secret_key=os.environ["LVR_S3_SECRET_KEY"],
                 secure=u.scheme == "https", region=os.environ.get("LVR_S3_REGION") or None)


def download_prefix(uri: str, dest: Path) -> Path:
    """Copy every object under s3://bucket/prefix/ into dest (keeping relative paths)."""
    c = client()
    bucket, prefix = split_s3(uri)
    base = f"{prefix}/" if prefix else ""
    n = 0
    for obj in c.list_objects(bucket, prefix=base, recursive=True):
        rel = obj.object_name[len(base):]
        if not rel:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        c.fget_object(bucket, obj.object_name, str(target))
        n += 1
    if n == 0:
        raise FileNotFoundError(f"nothing under {uri}")
    return dest


def upload_files(folder: Path, uri: str, names: list[str]) -> None:
    """Upload the given relative paths of folder to s3://bucket/prefix/, in order (marker last by the caller)."""
    c = client()
    bucket, prefix = split_s3(uri)
    if not c.bucket_exists(bucket):
        c.make_bucket(bucket)
    for rel in names:
        key = f"{prefix}/{rel}" if prefix else rel
        c.fput_object(bucket, key, str(folder / rel))


def delete_object(uri: str, rel: str) -> None:
    c = client()
    bucket, prefix = split_s3(uri)
    try:
        c.remove_object(bucket, f"{prefix}/{rel}" if prefix else rel)
    except Exception:  # noqa: BLE001 - absent object or bucket: nothing to delete
        pass
