"""Connectives in id-encoded sentences: where they are, which gate steps read them, and the controls.

Pure numpy. A sentence is a row of word ids (0 = padding) as the sentiment task encodes it; a
token's gate step is found from the row's mask (`token_steps`), never assumed from the padding
side, so the same code is right for end-padded rows (the sentiment task's) and front-padded ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONTRASTIVE = ("but", "however", "yet", "although")
CONTROL = "and"
CONTRASTIVE_GROUP, CONTROL_GROUP = "contrastive", "and"
# Steps read, as (first, last) offsets from the connective: its own step; the mean over it and
# the next 1 or 2 steps; the 1st or 2nd step after it alone (where a GRU's z, which sees the
# connective only through h, can move).
WINDOWS = {"at": (0, 0), "at_1": (0, 1), "at_2": (0, 2), "next_1": (1, 1), "next_2": (2, 2)}
BEFORE, AFTER = 4, 6  # the aligned curves' reach around the connective


@dataclass(frozen=True)
class Occurrence:
    """One connective in one sentence: `index` counts real tokens (0 = the first word)."""

    sentence: int  # row in the encoded array
    word: str
    index: int
    n_tokens: int
    group: str

    @property
    def relative(self) -> float:
        """Where the connective sits, 0 (first word) to 1 (last word)."""
        return self.index / max(self.n_tokens - 1, 1)


def token_steps(mask_row: np.ndarray) -> np.ndarray:
    """The gate step (column) of each real token of one row, in reading order."""
    return np.flatnonzero(np.asarray(mask_row, dtype=bool))


def words_of(row: np.ndarray, vocabulary: Sequence[str]) -> list[str]:
    """The row's real tokens as words (padding dropped; id 1 is the vocabulary's OOV entry)."""
    return [vocabulary[i] for i in np.asarray(row) if i != 0]


def first_index(words: Sequence[str], connectives: Sequence[str], after: int) -> tuple[str, int] | None:
    """(word, index) of the first of `connectives` with a word before it and `after` words after."""
    for k, word in enumerate(words):
        if word in connectives:
            return (word, k) if 1 <= k <= len(words) - 1 - after else None
    return None


def find_occurrences(
    x: np.ndarray, vocabulary: Sequence[str], after: int = max(last for _, last in WINDOWS.values())
) -> tuple[list[Occurrence], list[Occurrence]]:
    """(contrastive, and-candidates): each sentence's first contrastive connective, and the first
    "and" of each sentence that has no contrastive connective, both with room for `after` steps."""
    contrastive, candidates = [], []
    for s, row in enumerate(x):
        words = words_of(row, vocabulary)
        hit = first_index(words, CONTRASTIVE, after)
        if hit is not None:
            contrastive.append(Occurrence(s, hit[0], hit[1], len(words), CONTRASTIVE_GROUP))
            continue
        if any(w in CONTRASTIVE for w in words):
            continue  # a contrastive word too near an end: neither group
        hit = first_index(words, (CONTROL,), after)
        if hit is not None:
            candidates.append(Occurrence(s, hit[0], hit[1], len(words), CONTROL_GROUP))
    return contrastive, candidates


def match_controls(contrastive: Sequence[Occurrence], candidates: Sequence[Occurrence]) -> list[Occurrence]:
    """One "and" sentence per contrastive one (while any are left), nearest in relative position,
    then in length; greedy, without replacement, in the contrastive sentences' order."""
    left = list(candidates)
    chosen = []
    for occ in contrastive:
        if not left:
            break
        k = min(
            range(len(left)),
            key=lambda j: (abs(left[j].relative - occ.relative), abs(left[j].n_tokens - occ.n_tokens), j),
        )
        chosen.append(left.pop(k))
    return chosen


def sentence_profile(gate: np.ndarray, mask_row: np.ndarray) -> np.ndarray:
    """The unit-mean gate at each real token of one row, in reading order: (n_tokens,)."""
    return np.asarray(gate, dtype=np.float64)[token_steps(mask_row)].mean(axis=-1)


def gate_drops(
    gate: np.ndarray,
    mask: np.ndarray,
    occurrences: Sequence[Occurrence],
    windows: Mapping[str, tuple[int, int]] = WINDOWS,
) -> np.ndarray:
    """(n_occurrences, n_windows): the sentence's own mean gate minus the mean gate over each
    window's steps, offsets `first`…`last` from the connective (positive: the gate closes there,
    relative to the sentence). `gate` is (batch, timesteps, units) over the rows `occ.sentence`
    indexes."""
    out = np.empty((len(occurrences), len(windows)))
    for n, occ in enumerate(occurrences):
        profile = sentence_profile(gate[occ.sentence], mask[occ.sentence])
        if len(profile) != occ.n_tokens:
            raise ValueError(
                f"sentence {occ.sentence}: {len(profile)} real steps in the mask, {occ.n_tokens} tokens"
            )
        for j, (first, last) in enumerate(windows.values()):
            out[n, j] = profile.mean() - profile[occ.index + first : occ.index + last + 1].mean()
    return out


def aligned_curves(
    gate: np.ndarray,
    mask: np.ndarray,
    occurrences: Sequence[Occurrence],
    before: int = BEFORE,
    after: int = AFTER,
) -> np.ndarray:
    """(n_occurrences, before + 1 + after): the unit-mean gate minus the sentence's mean at offsets
    −before … +after from the connective; NaN where the sentence has no token there."""
    out = np.full((len(occurrences), before + 1 + after), np.nan)
    for n, occ in enumerate(occurrences):
        profile = sentence_profile(gate[occ.sentence], mask[occ.sentence])
        relative = profile - profile.mean()
        for j, offset in enumerate(range(-before, after + 1)):
            k = occ.index + offset
            if 0 <= k < len(profile):
                out[n, j] = relative[k]
    return out
