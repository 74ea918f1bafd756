"""``minidl.utils.data``: PyTorch's ``torch.utils.data`` spelling of :mod:`minidl.data` (the same objects)."""
from ..data import *  # noqa: F401,F403 - a second name for the same module's contents
from ..data import __all__  # noqa: F401
