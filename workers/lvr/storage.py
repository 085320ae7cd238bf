"""Local paths and s3:// URIs (MinIO) behind one small interface: bundles, checkpoints, datasets and images.

MinIO is reached with LVR_S3_ENDPOINT, LVR_S3_ACCESS_KEY, LVR_S3_SECRET_KEY and LVR_S3_REGION (the same variables the
TypeScript services use). A missing variable raises StorageConfigError naming it.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

ENV_VARS = ("LVR_S3_ENDPOINT", "LVR_S3_ACCESS_KEY", "LVR_S3_SECRET_KEY")


class StorageConfigError(ValueError):
    """The object store is not configured, or a URI is not a valid s3://bucket/key (non-retryable)."""


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    p = urlparse(uri)
    if p.scheme != "s3" or not p.netloc:
        raise StorageConfigError(f"not an s3://bucket/key URI: {uri!r}")
    return p.netloc, p.path.lstrip("/")


def join(base: str, *parts: str) -> str:
    out = base
    for part in parts:
        out = out.rstrip("/") + "/" + part.lstrip("/")
    return out


def local_path(uri: str) -> Path:
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)


_clients: dict[tuple[str, ...], object] = {}


def client():
    """A minio.Minio client for the current LVR_S3_* environment (one per distinct setting, reused)."""
    missing = [v for v in ENV_VARS if not os.environ.get(v)]
    if missing:
        raise StorageConfigError(
            f"s3:// access needs the environment variable(s) {', '.join(missing)} "
            "(exported by `npm test`, or `eval \"$(node scripts/stack/cli.mjs env)\"`)")
    settings = tuple(os.environ.get(v, "") for v in (*ENV_VARS, "LVR_S3_REGION"))
    if settings not in _clients:
        from minio import Minio

        endpoint, access_key, secret_key, region = settings
        ep = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        _clients[settings] = Minio(ep.netloc, access_key=access_key, secret_key=secret_key,
                                   secure=ep.scheme == "https", region=region or None)
    return _clients[settings]


s3_client = client


def ensure_bucket(bucket: str) -> None:
    c = s3_client()
    if not c.bucket_exists(bucket):
        try:
            c.make_bucket(bucket)
        except Exception:  # created concurrently by another rank/process
            if not c.bucket_exists(bucket):
                raise


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        resp = s3_client().get_object(bucket, key)
        try:
            return resp.read()
        finally:
            resp.close()
            resp.release_conn()
    return local_path(uri).read_bytes()


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            s3_client().stat_object(bucket, key)
            return True
        except Exception:
            return False
    return local_path(uri).exists()


def write_bytes(uri: str, data: bytes) -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        ensure_bucket(bucket)
        s3_client().put_object(bucket, key, io.BytesIO(data), len(data))
        return
    p = local_path(uri)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, p)


def upload_file(path: Path, uri: str) -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        ensure_bucket(bucket)
        s3_client().fput_object(bucket, key, str(path))
        return
    dst = local_path(uri)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dst)


def download_file(uri: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().fget_object(bucket, key, str(path))
        return
    shutil.copyfile(local_path(uri), path)


def list_files(prefix_uri: str) -> list[str]:
    """Relative names of every object/file under a prefix (recursive)."""
    if is_s3(prefix_uri):
        bucket, key = split_s3(prefix_uri)
        key = key.rstrip("/") + "/" if key else ""
        c = s3_client()
        if not c.bucket_exists(bucket):
            return []
        return sorted(o.object_name[len(key):] for o in c.list_objects(bucket, prefix=key, recursive=True))
    root = local_path(prefix_uri)
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def upload_dir(local: Path, uri: str, skip: tuple[str, ...] = ()) -> None:
    for p in sorted(local.rglob("*")):
        rel = str(p.relative_to(local))
        if p.is_file() and rel not in skip:
            upload_file(p, join(uri, rel))


def download_dir(uri: str, local: Path) -> None:
    for rel in list_files(uri):
        download_file(join(uri, rel), local / rel)


def delete_prefix(prefix_uri: str) -> None:
    if is_s3(prefix_uri):
        bucket, key = split_s3(prefix_uri)
        c = s3_client()
        for rel in list_files(prefix_uri):
            c.remove_object(bucket, key.rstrip("/") + "/" + rel)
        return
    shutil.rmtree(local_path(prefix_uri), ignore_errors=True)


def download_prefix(uri: str, dest: Path) -> Path:
    """Copy every object under s3://bucket/prefix/ (or a local folder) into dest, keeping relative paths."""
    names = list_files(uri)
    if not names:
        raise FileNotFoundError(f"nothing under {uri}")
    for rel in names:
        download_file(join(uri, rel), Path(dest) / rel)
    return Path(dest)


def upload_files(folder: Path, uri: str, names: list[str]) -> None:
    """Upload the given relative paths of folder under uri, in the given order (the caller puts its marker last)."""
    for rel in names:
        upload_file(Path(folder) / rel, join(uri, rel))


def delete_object(uri: str, rel: str) -> None:
    """Remove one object or file below uri; an absent one is not an error."""
    target = join(uri, rel)
    if is_s3(target):
        bucket, key = split_s3(target)
        try:
            client().remove_object(bucket, key)
        except Exception:  # noqa: BLE001 - absent object or bucket: nothing to delete
            pass
        return
    local_path(target).unlink(missing_ok=True)
