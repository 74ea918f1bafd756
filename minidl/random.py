"""The one random source of minidl.

Weight initialisation, dropout, random data transforms and data shuffling all draw from the generator
returned by :func:`default_generator`, so ``minidl.manual_seed(s)`` makes a whole run reproducible.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed minidl's generator (and thereby every random choice minidl makes)."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    """The generator minidl draws from now."""
    return _generator


def get_state() -> dict:
    """The generator's state, to save in a checkpoint."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state taken by :func:`get_state`."""
    _generator.bit_generator.state = state
