"""Where photos live: content-addressed by their sha256, on disk or in S3-compatible storage.

Owns storing and reading the re-encoded photo bytes under their hash (architecture §6.3: the
registration carries the hash; the stream entry never carries image bytes). Storing a hash that
is already there writes nothing, so a retried upload never keeps a second copy. Disk (under
`EXAMREG_DATA_DIR/photos/`, written to a temporary file, fsynced, then renamed) is the default;
`EXAMREG_PHOTO_STORE=s3://bucket/prefix` uses boto3 against any S3-compatible server. Both block,
so every call runs in a worker thread; every S3 call has the I/O timeout.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import Unavailable
from engine.settings import Settings

_SHA256 = re.compile(r"[0-9a-f]{64}")


class PhotoStore(Protocol):
    name: str

    async def put(self, digest: str, data: bytes) -> bool:
        """Store `data` under `digest`; False when it was already stored (nothing written)."""
        ...

    async def get(self, digest: str) -> bytes | None: ...

    async def exists(self, digest: str) -> bool: ...


def _checked(digest: str) -> str:
    if not _SHA256.fullmatch(digest):
        raise ValueError("not a sha256 hex digest")
    return digest


class DiskPhotoStore:
    """`ROOT/ab/cd/abcd….jpg`: two levels of 256 folders keep each folder small at 1.2 million."""

    name = "disk"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        digest = _checked(digest)
        return self.root / digest[:2] / digest[2:4] / f"{digest}.jpg"

    def _put(self, digest: str, data: bytes) -> bool:
        target = self.path(digest)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)  # atomic: a reader sees all of it or nothing
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return True

    def _get(self, digest: str) -> bytes | None:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            return None

    async def put(self, digest: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put, digest, data)

    async def get(self, digest: str) -> bytes | None:
        return await asyncio.to_thread(self._get, digest)

    async def exists(self, digest: str) -> bool:
        return await asyncio.to_thread(self.path(digest).exists)


class S3PhotoStore:
    """`s3://bucket/prefix`: objects `prefix/ab/abcd….jpg`, written only if absent."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        bucket, _, prefix = settings.photo_store.removeprefix("s3://").partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        timeout = settings.io_timeout_seconds
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.photo_s3_endpoint,
            region_name=settings.photo_s3_region,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

    def key(self, digest: str) -> str:
        digest = _checked(digest)
        return "/".join(p for p in (self.prefix, digest[:2], f"{digest}.jpg") if p)

    def _exists(self, digest: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _put(self, digest: str, data: bytes) -> bool:
        if self._exists(digest):
            return False
        self.client.put_object(
            Bucket=self.bucket, Key=self.key(digest), Body=data, ContentType="image/jpeg"
        )
        return True

    def _get(self, digest: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(digest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        body: bytes = answer["Body"].read()
        return body

    async def _call(self, function: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args)
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(retry_after=5) from exc

    async def put(self, digest: str, data: bytes) -> bool:
        stored: bool = await self._call(self._put, digest, data)
        return stored

    async def get(self, digest: str) -> bytes | None:
        data: bytes | None = await self._call(self._get, digest)
        return data

    async def exists(self, digest: str) -> bool:
        found: bool = await self._call(self._exists, digest)
        return found


def open_store(settings: Settings) -> PhotoStore:
    """The store `EXAMREG_PHOTO_STORE` names: S3 for `s3://…`, else disk under the data dir."""
    if settings.photo_store.startswith("s3://"):
        return S3PhotoStore(settings)
    return DiskPhotoStore(settings.data_dir / "photos")
