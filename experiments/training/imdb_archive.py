"""The IMDB corpus as the project pins it, converted from Stanford's aclImdb_v1.tar.gz."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

from experiments.training.atomic_write import write_gzip


class CorpusError(ValueError):
    """A corpus file is missing, cannot be fetched, or is not the expected bytes."""


IMDB_ARCHIVE_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_IMDB_MEMBER = re.compile(r"^aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")


def imdb_from_archive(archive: Path, folder: Path) -> None:
    """Write imdb_train.jsonl.gz and imdb_test.jsonl.gz from aclImdb_v1.tar.gz.

    The layout is that of the pinned files: one JSON object per review,
    {"label": 0|1 (neg|pos), "id", "rating" (from the file name), "text" (the file's bytes as
    UTF-8, "<br />" kept)}, negatives first then positives, each by id; the unlabelled `unsup`
    reviews are left out; gzip level 9 with mtime 0 and the .jsonl name in the header, which is
    what makes the output byte-identical to the pinned sha256 (checked by the caller).
    """
    records: dict[str, list[tuple[int, int, dict]]] = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            match = _IMDB_MEMBER.match(member.name)
            if match is None or not member.isfile():
                continue
            split, polarity, review_id, rating = match.groups()
            label = int(polarity == "pos")
            handle = tar.extractfile(member)
            assert handle is not None  # a regular file always has content
            text = handle.read().decode("utf-8")  # bytes, not text mode: keep any \r as it is
            record = {"label": label, "id": int(review_id), "rating": int(rating), "text": text}
            records[split].append((label, int(review_id), record))
    for split, rows in records.items():
        if not rows:  # checked before writing anything: no half-converted corpus
            raise CorpusError(f"{archive} holds no aclImdb/{split}/(neg|pos)/<id>_<rating>.txt reviews.")
    for split, rows in records.items():
        rows.sort(key=lambda row: row[:2])
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for _, _, record in rows)
        write_gzip(lines.encode("utf-8"), folder / f"imdb_{split}.jsonl.gz")
