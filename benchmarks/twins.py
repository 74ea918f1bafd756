"""PyTorch twins of the models in ``models/``, made from the very same source.

minidl's API is PyTorch's, so a model file written for minidl is also a PyTorch model file once its
``minidl`` imports point at ``torch``. :func:`torch_module` loads a ``models/*.py`` file that way, so the
benchmark compares the two libraries on one definition of each network, not on two that could drift.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def torch_module(name: str) -> types.ModuleType:
    """``models/<name>.py`` with ``minidl.nn``/``minidl.nn.functional`` replaced by ``torch.nn``/``torch.nn.functional``."""
    source = (MODELS_DIR / f"{name}.py").read_text()
    source = source.replace("import minidl.nn.functional as F", "import torch.nn.functional as F")
    source = source.replace("import minidl.nn as nn", "import torch.nn as nn")
    if "minidl" in source.replace('"""', ""):
        raise RuntimeError(f"models/{name}.py uses minidl beyond nn/functional; it has no PyTorch twin")
    module = types.ModuleType(f"torch_twin_{name}")
    module.__file__ = str(MODELS_DIR / f"{name}.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own source file
    sys.modules[module.__name__] = module
    return module


def copy_weights(minidl_model, torch_model) -> None:
    """Load ``minidl_model``'s state_dict into ``torch_model`` (same keys, same shapes)."""
    import torch

    state = {k: torch.from_numpy(v.copy()) for k, v in minidl_model.state_dict().items()}
    torch_model.load_state_dict(state, strict=True)


__all__ = ["torch_module", "copy_weights"]
