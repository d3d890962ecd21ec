"""Data set ingest vs. the bare minimum: unzip the archive and decode every image with Pillow.

Generates a 2,000-image detection data set (640x480 JPEGs with texture and
1-3 labelled shapes each, the Ultralytics layout), then in the same run and on
the same archive, interleaved over several rounds:

* baseline: `unzip` (the binary when present, and Python's zipfile) plus a
  single-threaded Pillow decode of every image;
* ingest: the service, as the API runs it: `dataset_create` on the uploaded
  temporary file (hash, structure check, store) and `dataset_ingest` (extract,
  validate every image and label, lay out, previews, manifest, rows);
* re-ingest: the identical content uploaded again (recognised by its hash), with
  the digest the upload handler computed while the bytes streamed in, and
  hashed in the service (as when the service is called without one);
* first job on a node: `dataset_local_copy` builds the Ultralytics layout in
  the node-local cache from the archive and the stored manifest;
* second job: `dataset_local_copy` when the cache already holds the layout.

Prints the medians and the ratios of wall time, and the CPU time of both (on a
busy machine, wall time depends on what else runs; CPU time much less).

    .venv/bin/python bench/ingest.py [--images 2000] [--rounds 3] [--threads 0]

Goals (issue 3): ingest at most 1.5x the baseline; re-ingest at most 0.1x.
"""

import argparse
import hashlib
import io
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
os.environ["VAR_DIR"] = str(WORK / "var")
os.environ.pop("DATABASE_URL", None)
os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.uploadedfile import TemporaryUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from datasets import services  # noqa: E402
from datasets.cache import dataset_local_copy  # noqa: E402

NAMES = ["square", "disc", "triangle"]


def generate(path, count, seed=0):
    """A zip in the Ultralytics layout: data.yaml, images/{train,val}/*.jpg, labels/{train,val}/*.txt."""
    rng = random.Random(seed)
    texture = Image.effect_noise((640, 480), 40).convert("RGB")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.yaml", "names:\n" + "".join(f"  - {n}\n" for n in NAMES))
        for index in range(count):
            split = "val" if index % 5 == 0 else "train"
            tint = Image.new("RGB", (640, 480), tuple(rng.randrange(60, 200) for _ in range(3)))
            image = Image.blend(texture, tint, 0.6)
            draw = ImageDraw.Draw(image)
            lines = []
            for _ in range(rng.randint(1, 3)):
                class_id = rng.randrange(len(NAMES))
                w, h = rng.randint(40, 200), rng.randint(40, 200)
                x, y = rng.randint(0, 640 - w), rng.randint(0, 480 - h)
                colour = tuple(rng.randrange(256) for _ in range(3))
                if class_id == 0:
                    draw.rectangle([x, y, x + w, y + h], fill=colour)
                elif class_id == 1:
                    draw.ellipse([x, y, x + w, y + h], fill=colour)
                else:
                    draw.polygon([(x + w / 2, y), (x + w, y + h), (x, y + h)], fill=colour)
                lines.append(f"{class_id} {(x + w / 2) / 640:.6f} {(y + h / 2) / 480:.6f} {w / 640:.6f} {h / 480:.6f}")
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            archive.writestr(f"images/{split}/{index:05d}.jpg", buffer.getvalue())  # deflated, as `zip -r` does
            archive.writestr(f"labels/{split}/{index:05d}.txt", "\n".join(lines) + "\n")


def cpu_seconds():
    """User + system CPU time of this process (every thread) and of its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def baseline(archive, use_binary):
    target = Path(tempfile.mkdtemp(dir=WORK, prefix="baseline-"))
    cpu = cpu_seconds()
    started = time.perf_counter()
    if use_binary:
        subprocess.run(["unzip", "-q", str(archive), "-d", str(target)], check=True)
    else:
        with zipfile.ZipFile(archive) as source:
            source.extractall(target)
    for path in sorted(target.rglob("*.jpg")):
        with Image.open(path) as image:
            image.load()
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    shutil.rmtree(target)
    return seconds, cpu


def uploaded(archive):
    """What the web tier hands the service: the upload streamed to a temporary file, hashed on the way
    (datasets.api.uploads.DatasetUploadHandler); neither is part of the timings."""
    upload = TemporaryUploadedFile("shapes.zip", "application/zip", archive.stat().st_size, None)
    digest = hashlib.sha256()
    with open(archive, "rb") as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
            upload.file.write(chunk)
    upload.file.flush()
    upload.seek(0)
    return upload, digest.hexdigest()


def ingest(archive, owner, name):
    upload, sha256 = uploaded(archive)
    cpu = cpu_seconds()
    started = time.perf_counter()
    dataset, created = services.dataset_create(owner=owner, name=name, file=upload, content_sha256=sha256)
    assert created
    dataset = services.dataset_ingest(dataset_id=dataset.pk)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    upload.close()
    assert dataset.status == "ready", dataset.errors[:3]
    return seconds, cpu, dataset


def reingest(archive, owner, first, *, hashed):
    """The identical upload again; `hashed`: with the digest from the upload handler, else hashed here."""
    upload, sha256 = uploaded(archive)
    started = time.perf_counter()
    dataset, created = services.dataset_create(
        owner=owner, name="again", file=upload, content_sha256=sha256 if hashed else None
    )
    seconds = time.perf_counter() - started
    assert not created and dataset.pk == first.pk
    upload.close()
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="DATASET_INGEST_THREADS (0: one per CPU, at most 8)")
    args = parser.parse_args()
    settings.DATASET_INGEST_THREADS = args.threads
    settings.MEDIA_ROOT = WORK / "media"
    settings.STORAGES["default"]["OPTIONS"]["location"] = str(settings.MEDIA_ROOT)
    settings.CACHE_DIR = WORK / "cache"
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create(username="bench")
    archive = WORK / "shapes.zip"
    print(f"generating {args.images} images ...", flush=True)
    generate(archive, args.images)
    size = archive.stat().st_size
    print(f"archive: {size / 1024**2:.1f} MiB, {args.images} images; work dir {WORK}")
    print(f"CPUs: {os.cpu_count()}, ingest threads: {args.threads or min(8, os.cpu_count() or 1)}")
    use_binary = shutil.which("unzip") is not None
    base, base_py, runs, again, again_hashing, first_job, local = [], [], [], [], [], [], []
    base_cpu, runs_cpu = [], []
    for round_number in range(args.rounds):
        seconds, cpu = baseline(archive, use_binary)
        base.append(seconds)
        base_cpu.append(cpu)
        base_py.append(baseline(archive, False)[0])
        settings.CACHE_DIR = WORK / f"cache-{round_number}"  # each round starts cold
        seconds, cpu, dataset = ingest(archive, owner, f"shapes-{round_number}")
        runs.append(seconds)
        runs_cpu.append(cpu)
        again.append(reingest(archive, owner, dataset, hashed=True))
        again_hashing.append(reingest(archive, owner, dataset, hashed=False))
        started = time.perf_counter()
        dataset_local_copy(dataset)
        first_job.append(time.perf_counter() - started)
        started = time.perf_counter()
        dataset_local_copy(dataset)
        local.append(time.perf_counter() - started)
        print(
            f"round {round_number + 1}: baseline {base[-1]:.2f} s (zipfile: {base_py[-1]:.2f} s, "
            f"CPU {base_cpu[-1]:.2f} s), ingest {seconds:.2f} s (CPU {cpu:.2f} s), re-ingest {again[-1]:.3f} s",
            flush=True,
        )
        services.dataset_delete(dataset=dataset)
    b, i, r = statistics.median(base), statistics.median(runs), statistics.median(again)
    print()
    print(f"baseline ({'unzip' if use_binary else 'zipfile'} + Pillow decode): {b:.2f} s (median)")
    print(f"baseline (zipfile.extractall + Pillow decode):   {statistics.median(base_py):.2f} s (median)")
    print(f"ingest through the service:                      {i:.2f} s (median)  ratio {i / b:.2f}x (goal <= 1.5x)")
    print(f"re-ingest of identical content:                  {r:.3f} s (median)  ratio {r / b:.3f}x (goal <= 0.1x)")
    bc, ic = statistics.median(base_cpu), statistics.median(runs_cpu)
    print(f"CPU time (all threads and children): baseline {bc:.2f} s, ingest {ic:.2f} s, ratio {ic / bc:.2f}x")
    rh = statistics.median(again_hashing)
    print(f"re-ingest, hashing the upload in the service:    {rh:.3f} s (median)  ratio {rh / b:.3f}x")
    print(f"first job on a node: build the layout (cache):   {statistics.median(first_job):.2f} s (median)")
    print(f"second job, layout already cached:               {statistics.median(local) * 1000:.1f} ms")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
