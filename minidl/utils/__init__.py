"""``minidl.utils``: where PyTorch keeps ``torch.utils.data``. ``minidl.utils.data`` holds :mod:`minidl.data`'s
names, so ``from minidl.utils.data import DataLoader`` and ``torch.utils.data.DataLoader`` (with ``import minidl
as torch``) work unchanged."""


def __getattr__(name):
    if name == "data":
        import importlib
        return importlib.import_module(".data", __name__)
    raise AttributeError(f"module 'minidl.utils' has no attribute {name!r}")
