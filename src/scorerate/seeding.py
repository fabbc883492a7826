"""Reproducible random streams: every draw comes from a SeedSequence keyed by identity.

A stream is named by (study seed, job key, purpose, index...), hashed into the
entropy of a numpy SeedSequence. Streams therefore never depend on the number of
workers, threads or chunks, which is what makes a job bit-identical however it runs.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["job_key", "key_parts", "rng", "seed_sequence"]


def key_parts(key: object) -> tuple:
    """A stream key as a tuple of parts: a string is one part, a sequence its items."""
    return (key,) if isinstance(key, str) else tuple(key)


def job_key(density: str, beta: float, d: int, n: int, seed: int) -> str:
    """Canonical text key of one (density, beta, d, n, seed) job."""
    return f"{density}|beta={float(beta)!r}|d={int(d)}|n={int(n)}|seed={int(seed)}"


def seed_sequence(*parts: object) -> np.random.SeedSequence:
    """SeedSequence whose entropy is a hash of the canonical text of `parts`."""
    # repr keeps types apart (the part "1" and the part 1 name different streams);
    # numpy scalars count as the Python number they hold, whatever their width.
    text = "\x1f".join(repr(p.item() if isinstance(p, np.generic) else p) for p in parts)
    digest = hashlib.sha256(text.encode()).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.SeedSequence(words)


def rng(*parts: object) -> np.random.Generator:
    """A PCG64 Generator for the stream named by `parts` (see seed_sequence)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(*parts)))
