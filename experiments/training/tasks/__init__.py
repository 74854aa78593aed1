"""Synthetic and real-text tasks: seeded generators, corpora verified by sha256, nothing shipped."""

from __future__ import annotations

from experiments.training.config import AUTO, RunConfig
from experiments.training.tasks.base import Task


def make_task(config: RunConfig) -> Task:
    """The Task a config names, with its options; corpora are read from the data directory."""
    c = config
    target = None if c.target == AUTO else float(c.target)
    if c.task == "copy":
        from experiments.training.tasks import copy_memory

        return copy_memory.make(
            seq_len=c.seq_len,
            seed=c.seed,
            variable_delay=c.variable_delay,
            target=target,
            n_copy=c.copy_symbols,
        )
    if c.task == "adding":
        from experiments.training.tasks import adding

        return adding.make(seq_len=c.seq_len, seed=c.seed, target=target)
    corpus = {} if c.corpus == AUTO else {"corpus": c.corpus}
    data_dir = None if c.data_dir == AUTO else c.data_dir
    if c.task == "char_lm":
        from experiments.training.tasks import char_lm

        return char_lm.make(seq_len=c.seq_len, seed=c.seed, data_dir=data_dir, target=target, **corpus)
    from experiments.training.tasks import sentiment

    return sentiment.make(
        seq_len=c.seq_len, seed=c.seed, data_dir=data_dir, vocab_size=c.vocab_size, target=target, **corpus
    )


__all__ = ["Task", "make_task"]
