"""Files written all or nothing: a killed download or conversion never leaves a truncated file."""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside `path`, renamed onto it only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
        ) as handle:
            temporary = Path(handle.name)
            yield handle
        os.replace(temporary, path)
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)  # gone already after a successful rename


def write_gzip(data: bytes, path: Path) -> None:
    """Deterministic gzip (level 9, mtime 0, header name without .gz), atomically renamed."""
    with (
        atomic(path) as handle,
        gzip.GzipFile(
            filename=path.name[: -len(".gz")], mode="wb", compresslevel=9, fileobj=handle, mtime=0
        ) as gz,
    ):
        gz.write(data)
