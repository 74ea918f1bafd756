"""``Module``: the base class of every layer and model.

A Module owns three kinds of state, each found by attribute assignment in ``__init__``:

* **parameters** (``self.weight = Parameter(...)``): the learnable tensors, returned by ``parameters()`` and
  handed to an optimizer;
* **buffers** (``self.register_buffer("running_mean", t)``): tensors that are saved with the model but not
  trained, such as BatchNorm's running statistics;
* **submodules** (``self.conv1 = Conv2d(...)``): Modules nested inside, visited recursively by
  ``parameters()``, ``state_dict()``, ``train()``, ``to()`` and ``repr``.

Names follow PyTorch, so ``state_dict()`` keys (``"features.0.weight"``, ``"bn.running_var"``) are
PyTorch's and a state_dict moves between the two libraries as NumPy arrays.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator

import numpy as np

from ..autograd import no_grad
from ..backend import device_of, normalize_device, to_device, to_numpy
from ..tensor import Tensor, _is_array
from .parameter import Parameter

__all__ = ["Module", "RemovableHandle"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys the model wanted but did not get, and the extra ones."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class RemovableHandle:
    """Returned by ``register_forward_hook`` and friends; ``handle.remove()`` unregisters the hook.

    Also a context manager: ``with model.register_forward_hook(h): ...`` removes it on exit.
    """

    _next_id = 0

    def __init__(self, hooks: dict, *extra: set):
        self.hooks = hooks
        self.extra = extra
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self.hooks.pop(self.id, None)
        for ids in self.extra:
            ids.discard(self.id)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _addindent(text: str, num_spaces: int) -> str:
    """Indent every line of ``text`` but the first (how a child's repr nests inside its parent's)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * num_spaces + line for line in lines[1:])


def _as_array(value):
    """A state_dict value as a backend array: Tensors, NumPy/CuPy arrays and array-likes such as
    ``torch.Tensor`` (through ``__array__``); None when ``value`` is not tensor-like."""
    if isinstance(value, Tensor):
        return value.array
    if _is_array(value):
        return value
    if isinstance(value, np.generic) or hasattr(value, "__array__"):
        return np.asarray(value)
    return None


class Module:
    """Base class for all layers and models.

    Subclasses set their parameters and submodules as attributes in ``__init__`` (after calling
    ``super().__init__()``) and define ``forward``. Call the module, not ``forward``, so hooks run::

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(x).relu()

        net = Net()
        y = net(mdl.randn(3, 4))

    Attributes:
        training: True in training mode (Dropout drops, BatchNorm uses batch statistics), False after
            ``eval()``.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks_with_kwargs", set())
        object.__setattr__(self, "_forward_hooks_always_called", set())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks_with_kwargs", set())

    # ------------------------------------------------------------------ the forward pass
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        if not (self._forward_hooks or self._forward_pre_hooks):
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    def _call_with_hooks(self, args: tuple, kwargs: dict):
        """``forward`` wrapped in the pre-hooks (which may replace the inputs) and the forward hooks (which
        may replace the output), in PyTorch's order and with PyTorch's calling conventions."""
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(f"forward pre-hook must return None or a tuple of (new_args, "
                                           f"new_kwargs), but got {result!r}.")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output, called = None, set()
        try:
            output = self.forward(*args, **kwargs)
            for hook_id, hook in list(self._forward_hooks.items()):
                called.add(hook_id)
                if hook_id in self._forward_hooks_with_kwargs:
                    result = hook(self, args, kwargs, output)
                else:
                    result = hook(self, args, output)
                if result is not None:
                    output = result
        except Exception:
            for hook_id, hook in list(self._forward_hooks.items()):
                if hook_id in self._forward_hooks_always_called and hook_id not in called:
                    try:
                        if hook_id in self._forward_hooks_with_kwargs:
                            hook(self, args, kwargs, output)
                        else:
                            hook(self, args, output)
                    except Exception as e:  # noqa: BLE001 - the forward's own error is the one to raise
                        warnings.warn(f"forward hook with always_call=True raised an exception that was "
                                      f"silenced as another error was raised in forward: {e}", stacklevel=2)
            raise
        return output

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before every ``forward``.

        The hook may return None (inputs unchanged), a new input (wrapped into a tuple) or a tuple of
        new positional inputs. With ``with_kwargs=True`` it is called as ``hook(module, args, kwargs)`` and
        may return ``(new_args, new_kwargs)``.

        Args:
            hook: the function to call.
            prepend: run it before the hooks already registered instead of after them.
            with_kwargs: pass the keyword arguments of the call too.
        Returns:
            A handle whose ``remove()`` unregisters the hook.
        """
        handle = RemovableHandle(self._forward_pre_hooks, self._forward_pre_hooks_with_kwargs)
        self._forward_pre_hooks[handle.id] = hook
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs.add(handle.id)
        if prepend:
            self._forward_pre_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every ``forward``; a non-None return replaces the output.

        Args:
            hook: the function to call.
            prepend: run it before the hooks already registered instead of after them.
            with_kwargs: call it as ``hook(module, args, kwargs, output)``.
            always_call: call it even when ``forward`` raises (with ``output=None``).
        Returns:
            A handle whose ``remove()`` unregisters the hook.
        """
        handle = RemovableHandle(self._forward_hooks, self._forward_hooks_with_kwargs,
                                 self._forward_hooks_always_called)
        self._forward_hooks[handle.id] = hook
        if with_kwargs:
            self._forward_hooks_with_kwargs.add(handle.id)
        if always_call:
            self._forward_hooks_always_called.add(handle.id)
        if prepend:
            self._forward_hooks.move_to_end(handle.id, last=False)
        return handle

    # ------------------------------------------------------------------ registration
    def __getattr__(self, name: str):
        # Only called when normal lookup fails: parameters, buffers and submodules live in their dicts.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                f"(minidl.nn.Parameter or None expected)")
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            if "_modules" not in d:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, keep="_modules")
            d["_modules"][name] = value
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                f"(minidl.nn.Module or None expected)")
            d["_modules"][name] = value
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                f"(minidl.Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(store, ()):
                del self.__dict__[store][name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def _forget(self, name: str, keep: str) -> None:
        """Remove ``name`` from every store but ``keep`` before it is registered there."""
        self.__dict__.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            if store != keep:
                self.__dict__[store].pop(name, None)
        if keep != "_buffers":
            self._non_persistent_buffers_set.discard(name)

    def _check_new_name(self, kind: str, name: str, store: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
        if hasattr(self, name) and name not in self.__dict__[store]:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add ``param`` (a :class:`Parameter`, or None for an absent one such as ``bias=False``) as ``name``."""
        self._check_new_name("parameter", name, "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            f"(minidl.nn.Parameter or None required)")
        if param is not None and param.grad_fn is not None:
            raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be "
                             f"created explicitly: wrap the tensor's data in a Parameter.")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is state but not a parameter (e.g. BatchNorm's ``running_mean``).

        Args:
            name: the attribute name.
            tensor: the buffer, or None (then it is left out of ``state_dict``).
            persistent: whether ``state_dict()`` includes it.
        """
        self._check_new_name("buffer", name, "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            f"(minidl.Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Add ``module`` as a child called ``name`` (same as ``setattr(self, name, module)``)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_new_name("module", name, "_modules")
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        """The submodule at dotted path ``target`` (``"features.0"``); ``""`` is the module itself."""
        mod = self
        for item in target.split(".") if target else ():
            child = mod._modules.get(item)
            if not isinstance(child, Module):
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}`")
            mod = child
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (``"features.0.weight"``, a ``named_parameters`` name)."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if module._parameters.get(name) is None:
            raise AttributeError(f"{module._get_name()} has no parameter `{name}`")
        return module._parameters[name]

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path ``target`` (``"bn.running_mean"``)."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if module._buffers.get(name) is None:
            raise AttributeError(f"{module._get_name()} has no buffer `{name}`")
        return module._buffers[name]

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """``(name, module)`` for this module (name ``prefix``) and every module inside it, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub_prefix = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub_prefix, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """This module and every module inside it."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """``(name, module)`` for the direct children."""
        memo = set()
        for name, module in self._modules.items():
            if module is not None and module not in memo:
                memo.add(module)
                yield name, module

    def children(self) -> Iterator["Module"]:
        """The direct children."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool):
        memo = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in module.__dict__[store].items():
                if value is None or value in memo:
                    continue
                if remove_duplicate:
                    memo.add(value)
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` pairs, named as in ``state_dict`` (``"0.weight"``); a shared parameter once.

        Args:
            prefix: prepended to every name.
            recurse: include the parameters of submodules (else only this module's own).
            remove_duplicate: yield a parameter shared by several modules only once.
        """
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter (what an optimizer trains)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """``(name, buffer)`` pairs, persistent or not."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer."""
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every submodule (children first) and then on this module; returns ``self``.

        Typical use: a custom initialisation, ``model.apply(init_weights)``.
        """
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (``mode=True``) or evaluation mode on this module and all inside it."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Turn gradient recording of every parameter on or off (e.g. to freeze a pretrained part)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: to None (the default), or to zeros in place."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    # ------------------------------------------------------------------ device and dtype
    def _apply(self, fn: Callable) -> "Module":
        """Replace the array of every parameter, gradient and buffer by ``fn(array)``, keeping the
        Parameter objects themselves (so an optimizer built before ``to()`` still holds them)."""
        for module in self.modules():
            for p in module._parameters.values():
                if p is None:
                    continue
                p.array = fn(p.array)
                if p.grad is not None:
                    p.grad.array = fn(p.grad.array)
            for b in module._buffers.values():
                if b is not None:
                    b.array = fn(b.array)
        return self

    def to(self, *args, **kwargs) -> "Module":
        """Move and/or cast parameters and buffers, in place; returns ``self``.

        ``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)`` (its device and dtype), or the
        keywords ``device=``, ``dtype=``. A dtype applies to floating-point tensors only
        (``num_batches_tracked`` stays int64).
        """
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, np.dtype) or (isinstance(a, type) and issubclass(a, np.generic)):
                dtype = a
            elif isinstance(a, str) or hasattr(a, "type"):  # "cuda", "cuda:0", or a torch.device-like object
                device = a
            else:
                dtype = a
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind not in "fc":
                raise TypeError(f"Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
        if device is not None:
            device = normalize_device(device)

        def convert(arr):
            if device is not None:
                arr = to_device(arr, device)
            if dtype is not None and arr.dtype.kind in "fc" and arr.dtype != dtype:
                arr = arr.astype(dtype)
            return arr

        return self._apply(convert)

    def cpu(self) -> "Module":
        """Move every parameter and buffer to the CPU."""
        return self.to("cpu")

    def cuda(self, device=None) -> "Module":
        """Move every parameter and buffer to the GPU."""
        return self.to("cuda" if device is None else device)

    def float(self) -> "Module":
        """Cast floating-point parameters and buffers to float32."""
        return self.to(np.float32)

    def double(self) -> "Module":
        """Cast floating-point parameters and buffers to float64."""
        return self.to(np.float64)

    # ------------------------------------------------------------------ state_dict
    def state_dict(self, *, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> "OrderedDict[str, Any]":
        """Every parameter and persistent buffer, by dotted name, as NumPy arrays.

        Keys and order are PyTorch's: each module's own parameters, then its buffers, then its children's,
        recursively (``"0.weight", "0.bias", "1.running_mean", ...``). Values are NumPy copies (from any
        device), so a state_dict kept as "best so far" does not change as training goes on; PyTorch's share
        memory with the model instead.

        Args:
            destination: a dict to fill (a new OrderedDict when None).
            prefix: prepended to every key.
            keep_vars: return the Parameters and buffer Tensors themselves instead of arrays.
        Returns:
            The dict.
        """
        if destination is None:
            destination = OrderedDict()
        for key, (_, _, t) in self._state_entries().items():
            destination[prefix + key] = t if keep_vars else np.array(to_numpy(t.array))
        return destination

    def _state_entries(self) -> "OrderedDict[str, tuple[Module, str, Tensor]]":
        """key -> (owning module, attribute name, tensor) for everything ``state_dict`` would hold."""
        entries = OrderedDict()
        for name, module in self.named_modules(remove_duplicate=False):
            key_prefix = name + "." if name else ""
            for pname, p in module._parameters.items():
                if p is not None:
                    entries[key_prefix + pname] = (module, pname, p)
            for bname, b in module._buffers.items():
                if b is not None and bname not in module._non_persistent_buffers_set:
                    entries[key_prefix + bname] = (module, bname, b)
        return entries

    def _optional_state_keys(self) -> set:
        """Names of this module's own state that a state_dict may leave out without being "missing"."""
        return set()

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False) -> _IncompatibleKeys:
        """Copy ``state_dict``'s values into this model's parameters and buffers.

        Values may be NumPy arrays, minidl Tensors, or anything with ``__array__`` (a CPU ``torch.Tensor``).
        They are copied into the existing arrays, so the model keeps its dtype and device and every
        Parameter keeps its identity (an optimizer built earlier still holds the right objects).

        Args:
            state_dict: key -> value, keys as :meth:`state_dict` makes them.
            strict: raise when keys are missing or unexpected. A shape mismatch always raises.
            assign: instead of copying, make each parameter/buffer hold the given array itself (with its
                dtype and device).
        Returns:
            ``(missing_keys, unexpected_keys)`` as a named tuple.
        Raises:
            RuntimeError: naming every missing and unexpected key (when ``strict``) and every key whose shape
                differs, with both shapes.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        entries = self._state_entries()
        missing = [k for k, (module, name, _) in entries.items()
                   if k not in state_dict and name not in module._optional_state_keys()]
        unexpected = [k for k in state_dict if k not in entries]
        errors = []
        loads = []
        for key, (module, name, target) in entries.items():
            if key not in state_dict:
                continue
            src = _as_array(state_dict[key])
            if src is None:
                errors.append(f'While copying the parameter named "{key}", expected a Tensor or an array from '
                              f"checkpoint but received {type(state_dict[key])}")
                continue
            if target.ndim == 0 and src.shape == (1,):  # PyTorch loads a 1-element tensor into a 0-d one
                src = src.reshape(())
            if tuple(src.shape) != tuple(target.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {tuple(src.shape)} from "
                              f"checkpoint, the shape in current model is {tuple(target.shape)}.")
                continue
            loads.append((target, src))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                type(self).__name__, "\n\t".join(errors)))
        with no_grad():
            for target, src in loads:
                if assign:
                    target.array = src
                else:
                    target.array[...] = to_device(src, device_of(target.array))
                    target._bump_version()
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr; layers override it (one line, or several
        lines separated by newlines)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({key}): " + _addindent(repr(module), 2) for key, module in self._modules.items()]
        lines = extra_lines + child_lines
        text = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"

    def __dir__(self):
        names = list(super().__dir__()) + list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(k for k in set(names) if not k[0].isdigit())
