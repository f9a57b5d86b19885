"""The photo pipeline's cost per upload and the storage it projects (issue 13 item 2, measurement).

Runs what `POST /api/v1/me/photo` runs for one upload — `engine.adapters.imaging.normalise`
(decode JPEG/PNG, EXIF orientation, checks, scale to fit 800×1200, baseline JPEG q88 without
metadata), the sha256, and the disk store's write (temp file, fsync, rename) — on SYNTHETIC
photo-like images of the sizes phones and scanners send, and reports per size: CPU ms of the
worker thread (`time.thread_time`), wall ms, input and stored bytes, and the disk blocks taken.
Then it projects the store for 1.2 million candidates (×1.2 photos each: some replace theirs).

    .venv/bin/python -m benchmarks.photo_pipeline [--repeat 20] [--candidates 1200000]

The images are SYNTHETIC: gradients, a face-like ellipse and sensor-like noise, so the JPEG
encoder has real detail to spend bytes on (a flat image would understate the stored size).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from engine.adapters import imaging
from engine.adapters.photos import DiskPhotoStore

SIZES = {
    "phone 12 MP (3024×4032 JPEG q92)": ((3024, 4032), "JPEG"),
    "phone 8 MP (2448×3264 JPEG q90)": ((2448, 3264), "JPEG"),
    "ID scan (1200×1800 JPEG q90)": ((1200, 1800), "JPEG"),
    "minimum (400×600 PNG)": ((400, 600), "PNG"),
}


def synthetic_photo(size: tuple[int, int], fmt: str, seed: int) -> bytes:
    """A portrait-like SYNTHETIC picture with photographic noise, encoded as a camera would."""
    width, height = size
    noise = Image.effect_noise((width // 4, height // 4), 40 + seed % 7).resize(size)
    base = Image.linear_gradient("L").resize(size).point(lambda v: 150 + v // 3)
    image = Image.merge("RGB", (base, noise.point(lambda v: 120 + v // 2), base))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.3, height * 0.12, width * 0.7, height * 0.5), fill=(222, 170, 140))
    draw.rectangle((width * 0.15, height * 0.55, width * 0.85, height), fill=(35, 55, 105))
    image = image.filter(ImageFilter.GaussianBlur(1))
    grain = Image.effect_noise(size, 12).convert("RGB")
    image = Image.blend(image, grain, 0.08)
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=92 if width > 2500 else 90)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def measure(repeat: int) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = DiskPhotoStore(Path(tmp))
        for label, (size, fmt) in SIZES.items():
            cpu, wall, stored, blocks, inputs = [], [], [], [], []
            for i in range(repeat):
                data = synthetic_photo(size, fmt, i)
                start_wall, start_cpu = time.perf_counter(), time.thread_time()
                result = imaging.normalise(data, 40_000_000)
                digest = hashlib.sha256(result.data).hexdigest()
                cpu.append((time.thread_time() - start_cpu) * 1000)
                store._put(digest, result.data)  # the blocking write, timed in wall time only
                wall.append((time.perf_counter() - start_wall) * 1000)
                path = store.path(digest)
                stored.append(len(result.data))
                blocks.append(path.stat().st_blocks * 512)
                inputs.append(len(data))
            rows.append(
                {
                    "image": label,
                    "input_kb": statistics.mean(inputs) / 1024,
                    "cpu_ms_p50": statistics.median(cpu),
                    "cpu_ms_max": max(cpu),
                    "wall_ms_p50": statistics.median(wall),
                    "stored_kb": statistics.mean(stored) / 1024,
                    "on_disk_kb": statistics.mean(blocks) / 1024,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=1_200_000)
    parser.add_argument("--photos-per-candidate", type=float, default=1.2)
    args = parser.parse_args()
    rows = measure(args.repeat)
    print("| image | input KB | CPU ms p50 | CPU ms max | wall ms p50 | stored KB | on disk KB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['image']} | {r['input_kb']:.0f} | {r['cpu_ms_p50']:.1f} | "
            f"{r['cpu_ms_max']:.1f} | {r['wall_ms_p50']:.1f} | {r['stored_kb']:.1f} | "
            f"{r['on_disk_kb']:.1f} |"
        )
    photos = args.candidates * args.photos_per_candidate
    worst = max(float(r["on_disk_kb"]) for r in rows)
    typical = float(rows[0]["on_disk_kb"])
    cpu = float(rows[0]["cpu_ms_p50"])
    print()
    print(
        f"{photos:,.0f} photos ({args.candidates:,} candidates × {args.photos_per_candidate}): "
        f"{photos * typical / 2**20:.1f} GiB on disk at the 12 MP phone's size "
        f"({photos * worst / 2**20:.1f} GiB at the largest measured); "
        f"{photos * cpu / 1000 / 3600:.1f} CPU-hours of decoding at its p50."
    )


if __name__ == "__main__":
    main()
