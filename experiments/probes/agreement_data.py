"""The agreement probe's data: the Linzen sentences and the nonce sentences, read and labelled.

Pure standard library and numpy (no TensorFlow): the probe checks its data before Keras loads.

- Linzen, Dupoux & Goldberg (2016), filtered by Gulordava et al. (2018): `subj_agr_filtered.text`
  (one tokenised, lower-cased sentence a line, ending "<eos>") and `.gold` (0-based verb index,
  correct form, wrong form, number of attractors). Lines whose correct and wrong forms are the
  same word carry no contrast and are dropped (4 lines in the pinned files); the count is reported.
- Gulordava et al. (2018) "colorless green" sentences, `generated.text` / `.gold`: the gold's
  columns are pattern, construction id, sentence id, verb index, POS, morphology (with
  Number=Sing|Plur), correct form, wrong form, lemma, the index of the word the verb agrees with
  (its subject noun, or in the VERB_NOUN_CCONJ_VERB pattern the first conjoined verb),
  that word's POS, and the original prefix. The text holds a nonce verb at the verb index; the
  forms scored are the gold's, as in the original evaluation.

The number rule (`is_plural`): of the two forms, the plural is "are", "were" or "have" against
"is", "was", "has"; otherwise it is the base form, of which the other is the 3rd-person singular
(+s, +es, or y → ies: "include"/"includes", "go"/"goes", "carry"/"carries"). The label is 1
(plural) when the correct form is the plural one. Forms are compared lower-cased.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ATTRACTOR_BUCKETS = ("0", "1", "2", "3", "4+")
IRREGULAR = {("are", "is"), ("were", "was"), ("have", "has")}  # (plural, singular)
NONCE = "gulordava_generated_english"


@dataclass(frozen=True)
class Item:
    """One agreement item: the tokens before the verb, its two forms, and its labels."""

    tokens: tuple[str, ...]  # the whole sentence as in the file
    verb: int  # index of the verb in `tokens`
    correct: str
    wrong: str
    plural: bool  # the correct form is the plural one
    attractors: int  # Linzen: intervening nouns of the other number; nonce: the file's n_attr
    subject: int = -1  # nonce: index of the word the verb agrees with; -1 when unknown
    kind: str = "linzen"  # "linzen", or the nonce set's "generated" / "original"
    group: str = ""  # nonce: "pattern#construction id" (its 10 sentences share structure)

    @property
    def prefix(self) -> tuple[str, ...]:
        return prefix(self.tokens, self.verb)

    @property
    def bucket(self) -> str:
        return bucket(self.attractors)


def prefix(tokens: tuple[str, ...] | list[str], verb: int) -> tuple[str, ...]:
    """The tokens before the verb at index `verb` (what the models read)."""
    if not 0 <= verb < len(tokens):
        raise ValueError(f"verb index {verb} outside a sentence of {len(tokens)} tokens")
    return tuple(tokens[:verb])


def bucket(attractors: int) -> str:
    return ATTRACTOR_BUCKETS[min(int(attractors), 4)]


def _singular_of(base: str, other: str) -> bool:
    return other in (base + "s", base + "es") or (base.endswith("y") and other == base[:-1] + "ies")


def is_plural(correct: str, wrong: str) -> bool:
    """Whether `correct` is the plural form of the pair (the rule in the module's docstring);
    ValueError for a pair the rule cannot order (for instance the same word twice)."""
    a, b = correct.lower(), wrong.lower()
    if (a, b) in IRREGULAR or _singular_of(a, b):
        return True
    if (b, a) in IRREGULAR or _singular_of(b, a):
        return False
    raise ValueError(f"cannot tell the number of {correct!r} against {wrong!r}")


def read_linzen(folder: Path) -> tuple[list[Item], dict[str, int]]:
    """The Linzen items (same-form lines dropped) and counts: read, dropped_same_form, kept."""
    texts = (folder / "subj_agr_filtered.text").read_text(encoding="utf-8").splitlines()
    golds = (folder / "subj_agr_filtered.gold").read_text(encoding="utf-8").splitlines()
    if len(texts) != len(golds):
        raise ValueError(f"{folder}: {len(texts)} sentences but {len(golds)} gold lines")
    items, dropped = [], 0
    for text, gold in zip(texts, golds):
        verb, correct, wrong, attractors = gold.split("\t")
        if correct.lower() == wrong.lower():
            dropped += 1
            continue
        tokens = tuple(text.split())
        items.append(Item(tokens, int(verb), correct, wrong, is_plural(correct, wrong), int(attractors)))
    return items, {"read": len(texts), "dropped_same_form": dropped, "kept": len(items)}


def read_nonce(folder: Path) -> list[Item]:
    """The 410 nonce-set items (generated and original), subject positions and numbers from the gold."""
    base = folder / NONCE
    texts = (base / "generated.text").read_text(encoding="utf-8").splitlines()
    golds = [line.split("\t") for line in (base / "generated.gold").read_text(encoding="utf-8").splitlines()]
    kinds = [_nonce_kind(row) for row in _tab_rows(base / "generated.tab") if row["class"] == "correct"]
    if not len(texts) == len(golds) == len(kinds):
        raise ValueError(f"{base}: {len(texts)} sentences, {len(golds)} gold lines, {len(kinds)} tab rows")
    items = []
    for text, gold, (kind, n_attr) in zip(texts, golds, kinds):
        number = gold[5].split("Number=")[1].split("|")[0]
        items.append(
            Item(
                tuple(text.split()),
                int(gold[3]),
                gold[6],
                gold[7],
                number == "Plur",
                n_attr,
                subject=int(gold[9]),
                kind=kind,
                group=f"{gold[0]}#{gold[1]}",
            )
        )
    return items


def _tab_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _nonce_kind(row: dict[str, str]) -> tuple[str, int]:
    return row["type"], int(row["n_attr"])
