"""CIFAR-10 encoded again at a lower JPEG quality: a rung of the ladder that measures what encoding costs.

    python scripts/jpeg_ladder.py ../shared/data/cifar10-jpg.tar.gz --quality 50 --out /var/tmp/cifar10-jpg-q50.tar.gz

decodes every image of an image-folder archive (the shared copy is JPEG quality 75, 4:2:0 chroma)
and encodes it again with Pillow at ``--quality``, same 4:2:0 subsampling, into an archive of the
same layout that ``--data.source`` takes. Each rung's images are compressed twice, at 75 and then
at the lower quality: the ladder measures how accuracy responds to more loss on top of what the
shared copy has, which says how much the 75 itself may cost only by extrapolation. The archives are
data, not code: write them outside the repository.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from pathlib import Path, PurePosixPath

from PIL import Image

PROGRESS_EVERY = 10_000


def reencode(source: Path, out: Path, quality: int) -> int:
    """Write ``out`` with every image of ``source`` encoded at ``quality``; returns how many."""
    partial = out.with_name(f".{out.name}.partial")
    count = 0
    with tarfile.open(source) as archive, tarfile.open(partial, "w:gz") as target:
        for member in archive:
            if not member.isfile():
                continue
            data = archive.extractfile(member).read()
            if PurePosixPath(member.name).suffix.lower() in (".jpg", ".jpeg", ".png"):
                buffer = io.BytesIO()
                Image.open(io.BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
                data = buffer.getvalue()
                member = tarfile.TarInfo(str(PurePosixPath(member.name).with_suffix(".jpg")))
                count += 1
                if count % PROGRESS_EVERY == 0:
                    print(f"{count:,} images encoded at quality {quality}", file=sys.stderr, flush=True)
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    partial.replace(out)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("source", type=Path, help="an image-folder archive of CIFAR-10 (.tar.gz)")
    parser.add_argument("--quality", type=int, required=True, help="JPEG quality of the new rung, 1-95")
    parser.add_argument("--out", type=Path, required=True, help="the new archive, outside the repository")
    args = parser.parse_args()
    if not 1 <= args.quality <= 95:
        parser.error(f"--quality takes 1 to 95 (Pillow's useful range), got {args.quality}")
    if not args.source.is_file():
        parser.error(f"{args.source} is not a file; give CIFAR-10 as an image-folder .tar.gz")
    count = reencode(args.source, args.out, args.quality)
    print(f"{count:,} images at JPEG quality {args.quality} in {args.out}")


if __name__ == "__main__":
    main()
