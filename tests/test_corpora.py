"""Corpus registry: sha256 verification, downloads, offline errors, the data directory, validation.

Real files come from the shared offline copy (../shared/corpora), read in place, never copied
into the project; downloads use file:// URLs or a closed local port, so no network is needed.
"""

import dataclasses
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from experiments.training import corpora, imdb_archive
from experiments.training.corpora import CORPORA, CorpusError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
UNREACHABLE = "http://127.0.0.1:9/x"  # the discard port: nothing listens, refused at once


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the offline corpora are not at {SHARED}")
    return SHARED


def _with_urls(monkeypatch, name: str, url_of) -> corpora.Corpus:
    """Swap corpus `name`'s registry entry for one whose file URLs are `url_of(file)`."""
    corpus = CORPORA[name]
    files = tuple(dataclasses.replace(f, url=url_of(f)) for f in corpus.files)
    patched = dataclasses.replace(corpus, files=files)
    monkeypatch.setitem(CORPORA, name, patched)
    return patched


@pytest.mark.parametrize("name", list(CORPORA))
def test_ensure_verifies_the_real_files(shared, name):
    paths = corpora.ensure(name, shared, download=False)
    assert list(paths) == [f.name for f in CORPORA[name].files]
    for f in CORPORA[name].files:
        assert paths[f.name] == shared / CORPORA[name].subdir / f.name
        assert hashlib.sha256(paths[f.name].read_bytes()).hexdigest() == f.sha256


def test_checksum_summarises_the_files_in_any_order(shared):
    paths = corpora.ensure("ptb", shared)
    lines = sorted(f"{p.name}  {hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in paths.values())
    expected = hashlib.sha256("".join(lines).encode()).hexdigest()
    assert corpora.checksum(paths) == expected
    assert corpora.checksum(reversed(list(paths.values()))) == expected
    assert corpora.checksum(corpora.ensure("sst2", shared)) != expected


def test_a_corrupted_file_names_the_expected_and_actual_hash(shared, tmp_path):
    folder = tmp_path / "sst2_glue"
    folder.mkdir()
    for name in ("train.tsv", "test.tsv"):  # big and untouched: links, not copies
        (folder / name).symlink_to(shared / "sst2_glue" / name)
    dev = folder / "dev.tsv"
    data = bytearray((shared / "sst2_glue" / "dev.tsv").read_bytes())
    data[100] ^= 1
    dev.write_bytes(bytes(data))
    expected = CORPORA["sst2"].files[1].sha256
    with pytest.raises(CorpusError) as err:
        corpora.ensure("sst2", tmp_path)
    message = str(err.value)
    assert str(dev) in message
    assert expected in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert isinstance(err.value, ValueError)


def test_offline_download_says_where_to_place_which_file(monkeypatch, tmp_path):
    _with_urls(monkeypatch, "ptb", lambda f: f"{UNREACHABLE}/{f.name}")
    with pytest.raises(CorpusError) as err:
        corpora.ensure("ptb", tmp_path)
    message = str(err.value)
    for f in CORPORA["ptb"].files:
        assert str(tmp_path / "ptb" / f.name) in message
        assert f"{UNREACHABLE}/{f.name}" in message
    assert list((tmp_path / "ptb").iterdir()) == []  # no partial downloads left behind


def test_no_download_allowed_names_path_and_real_url(tmp_path):
    with pytest.raises(CorpusError) as err:
        corpora.ensure("tinyshakespeare", tmp_path, download=False)
    (f,) = CORPORA["tinyshakespeare"].files
    assert str(tmp_path / "tinyshakespeare" / "input.txt") in str(err.value)
    assert f.url in str(err.value)
    assert f.url.startswith("https://raw.githubusercontent.com/karpathy/char-rnn/")


def test_download_verifies_and_renames_into_place(shared, monkeypatch, tmp_path):
    _with_urls(monkeypatch, "sst2", lambda f: (shared / "sst2_glue" / f.name).as_uri())
    paths = corpora.ensure("sst2", tmp_path)
    assert sorted(p.name for p in (tmp_path / "sst2_glue").iterdir()) == ["dev.tsv", "test.tsv", "train.tsv"]
    for f in CORPORA["sst2"].files:
        assert paths[f.name].read_bytes() == (shared / "sst2_glue" / f.name).read_bytes()
    # present now: a second call must not touch the network
    _with_urls(monkeypatch, "sst2", lambda f: UNREACHABLE)
    assert corpora.ensure("sst2", tmp_path) == paths


def test_a_wrong_download_is_rejected_and_removed(shared, monkeypatch, tmp_path):
    _with_urls(monkeypatch, "tinyshakespeare", lambda f: (shared / "ptb" / "ptb.valid.txt").as_uri())
    with pytest.raises(CorpusError, match=CORPORA["tinyshakespeare"].files[0].sha256):
        corpora.ensure("tinyshakespeare", tmp_path)
    assert list((tmp_path / "tinyshakespeare").iterdir()) == []


def test_unknown_corpus_lists_the_known_ones():
    with pytest.raises(CorpusError, match="'wiki'.*'tinyshakespeare', 'ptb', 'sst2', 'imdb'"):
        corpora.ensure("wiki")


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(corpora.ENV_VAR, raising=False)
    assert corpora.data_dir() == Path(__file__).resolve().parents[1] / "data"
    monkeypatch.setenv(corpora.ENV_VAR, "")
    assert corpora.data_dir() == Path(__file__).resolve().parents[1] / "data"
    monkeypatch.setenv(corpora.ENV_VAR, str(tmp_path / "env"))
    assert corpora.data_dir() == tmp_path / "env"
    assert corpora.data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert corpora.data_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"


def test_env_var_is_where_ensure_looks(shared, monkeypatch):
    monkeypatch.setenv(corpora.ENV_VAR, str(shared))
    assert corpora.ensure("tinyshakespeare", download=False)["input.txt"].parent == shared / "tinyshakespeare"


def test_validate_corpus(tmp_path):
    text, binary = tmp_path / "ok.txt", tmp_path / "latin1.txt"
    text.write_text("héllo\n", encoding="utf-8")
    binary.write_bytes("héllo\n".encode("latin-1"))
    assert corpora.validate_corpus("char_lm", "tinyshakespeare") is None
    assert corpora.validate_corpus("char_lm", "ptb") is None
    assert corpora.validate_corpus("char_lm", str(text)) is None
    assert corpora.validate_corpus("sentiment", "sst2") is None
    assert corpora.validate_corpus("sentiment", "imdb") is None
    for task, corpus, needles in [
        ("char_lm", "sst2", ["'sst2'", "'tinyshakespeare'", "'ptb'", "UTF-8 text file"]),
        ("char_lm", str(binary), [str(binary), "not UTF-8"]),
        ("char_lm", str(tmp_path / "nope.txt"), ["nope.txt", "no file"]),
        ("sentiment", "ptb", ["'ptb'", "'sst2'", "'imdb'"]),
        ("sentiment", str(text), [str(text), "'sst2'"]),
        ("copy", "ptb", ["'copy'", "char_lm", "sentiment"]),
    ]:
        message = corpora.validate_corpus(task, corpus)
        assert message is not None
        for needle in needles:
            assert needle in message, (needle, message)


def test_importing_corpora_loads_no_numeric_stack():
    code = (
        "import sys, experiments.training.corpora\n"
        "print(sorted({'numpy', 'tensorflow', 'keras'} & set(sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- IMDB from the Stanford archive


def _imdb_records(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


def _archive_of(records: list[bytes], split_of, archive: Path) -> None:
    """An aclImdb-layout tar.gz holding `records`, in scrambled order, plus files to ignore."""
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for line in reversed(records):
            r = json.loads(line)
            polarity = "pos" if r["label"] else "neg"
            add(f"aclImdb/{split_of(line)}/{polarity}/{r['id']}_{r['rating']}.txt", r["text"].encode("utf-8"))
        add("aclImdb/train/unsup/0_0.txt", b"unlabelled, left out")
        add("aclImdb/train/urls_pos.txt", b"http://www.imdb.com/title/tt0453418/usercomments")
        add("aclImdb/README", b"readme")


def test_imdb_conversion_reproduces_the_pinned_records(shared, tmp_path):
    train = _imdb_records(shared / "imdb" / "imdb_train.jsonl.gz")
    test = _imdb_records(shared / "imdb" / "imdb_test.jsonl.gz")
    # ids 2 and 10 of each class (numeric, not lexicographic, order) and texts with non-ASCII
    heads = tuple(f'{{"label": {label}, "id": {i},'.encode() for label in (0, 1) for i in (2, 10))
    pick = [i for i, line in enumerate(train) if line.startswith(heads)]
    pick += [i for i, line in enumerate(train) if not line.isascii()][:2]
    chosen_train = [train[i] for i in sorted(set(pick))]
    assert len(chosen_train) >= 5
    chosen_test = test[:3] + test[-2:]
    archive = tmp_path / "aclImdb_v1.tar.gz"
    _archive_of(chosen_train + chosen_test, lambda line: "train" if line in chosen_train else "test", archive)

    corpora.imdb_from_archive(archive, tmp_path)
    assert _imdb_records(tmp_path / "imdb_train.jsonl.gz") == chosen_train
    assert _imdb_records(tmp_path / "imdb_test.jsonl.gz") == chosen_test


def test_imdb_gzip_layout_reproduces_the_pinned_hash(shared, tmp_path):
    data = gzip.decompress((shared / "imdb" / "imdb_test.jsonl.gz").read_bytes())
    imdb_archive.write_gzip(data, tmp_path / "imdb_test.jsonl.gz")
    assert corpora.file_sha256(tmp_path / "imdb_test.jsonl.gz") == CORPORA["imdb"].files[1].sha256


def test_imdb_from_a_placed_archive_is_converted_and_verified(shared, tmp_path):
    train = _imdb_records(shared / "imdb" / "imdb_train.jsonl.gz")
    folder = tmp_path / "imdb"
    folder.mkdir()
    _archive_of(train[:4], lambda line: "train", folder / "aclImdb_v1.tar.gz")
    with pytest.raises(CorpusError, match="holds no aclImdb/test"):
        corpora.ensure("imdb", tmp_path, download=False)
    assert sorted(p.name for p in folder.iterdir()) == ["aclImdb_v1.tar.gz"]
    head = train[:4]
    _archive_of(
        head + train[-4:], lambda line: "train" if line in head else "test", folder / "aclImdb_v1.tar.gz"
    )
    # converted fine, but a 4-review train set is not the pinned file: rejected, not kept
    with pytest.raises(CorpusError, match=r"imdb_train\.jsonl\.gz is not the expected file.*converted from"):
        corpora.ensure("imdb", tmp_path, download=False)
    # placed by hand, the archive is the user's to delete
    assert sorted(p.name for p in folder.iterdir()) == ["aclImdb_v1.tar.gz"]


def test_imdb_offline_says_to_place_the_stanford_archive(monkeypatch, tmp_path):
    assert CORPORA["imdb"].files[0].url == corpora.IMDB_ARCHIVE_URL
    _with_urls(monkeypatch, "imdb", lambda f: UNREACHABLE)
    with pytest.raises(CorpusError) as err:
        corpora.ensure("imdb", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "imdb" / "aclImdb_v1.tar.gz") in message
    assert str(tmp_path / "imdb" / "imdb_train.jsonl.gz") in message
    assert UNREACHABLE in message
    with pytest.raises(CorpusError, match="aclImdb_v1.tar.gz"):
        corpora.ensure("imdb", tmp_path, download=False)
