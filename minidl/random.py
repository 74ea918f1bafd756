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


def get_rng_state() -> dict:
    """PyTorch's name for :func:`get_state` (minidl's state is a dict, not a byte tensor)."""
    return get_state()


def set_rng_state(state: dict) -> None:
    """PyTorch's name for :func:`set_state`."""
    set_state(state)


class Generator:
    """A random source of its own, for the ``generator=`` argument of factories, ``random_split`` and
    ``DataLoader`` (``torch.Generator().manual_seed(42)``).

    It wraps a ``numpy.random.Generator`` and answers every method of one (``permutation``, ``normal``, ...).

    >>> g = Generator().manual_seed(42)
    >>> int(g.integers(0, 100)) == int(Generator().manual_seed(42).integers(0, 100))
    True
    """

    def __init__(self, device: str = "cpu"):
        self._rng = np.random.default_rng()

    def manual_seed(self, seed: int) -> "Generator":
        self._rng = np.random.default_rng(seed)
        return self

    def get_state(self) -> dict:
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> "Generator":
        self._rng.bit_generator.state = state
        return self

    def __getattr__(self, name):
        if name.startswith("__"):  # copy/pickle look these up; answer them like any plain object
            raise AttributeError(name)
        return getattr(self.__dict__["_rng"], name)
