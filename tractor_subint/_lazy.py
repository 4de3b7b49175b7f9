"""Package facades that declare every public name but import on first use.

Why: every process of a tree imports this package's ``__init__`` modules
first (a forkserver process, a fresh subinterpreter, an exec'd child), and
each should load only what it runs: the forkserver must not load trio, and a
child must not load every backend. So a facade lists its names in a literal
``__all__`` (and under ``TYPE_CHECKING``, for type checkers), and resolves
each one from its module the first time it is read (PEP 562). Its
``__dir__`` lists them all before any is read (tab completion, ``help()``),
without importing anything.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping


def lazy_module(
    package: str, exports: Mapping[str, tuple[str, ...]],
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` for ``package``:
    ``exports`` maps a module, relative to the package (``'._fork'``), to
    the names it provides; a name that is the module's own (``'.log':
    ('log',)``) is the submodule itself. Use as
    ``__getattr__, __dir__ = lazy_module(__name__, {...})``."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        try:
            module = where[name]
        except KeyError:
            # A submodule not imported yet (``tractor_subint.runtime._supervise``),
            # as if the package imported it: loaded on first use too.
            if not name.startswith('__') and importlib.util.find_spec(f'{package}.{name}') is not None:
                return importlib.import_module(f'{package}.{name}')
            raise AttributeError(f'module {package!r} has no attribute {name!r}') from None
        loaded = importlib.import_module(module, package)
        value = loaded if module.lstrip('.') == name else getattr(loaded, name)
        setattr(sys.modules[package], name, value)  # later reads skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
