"""The engines' compiled loops: numba's ``njit`` with the settings every kernel uses.

Kernels (:mod:`updog.model.cash_kernel`, :mod:`updog.simulation.kernel`) are plain Python
functions over numpy arrays and scalars, compiled on first use with numba (wheels on PyPI for
every platform we run on, no compiler at install time): ``nogil`` so blocks of paths can run
on threads of one process, ``cache=True`` so the machine code is kept next to the module (or
under ``NUMBA_CACHE_DIR`` when the package folder is read-only) and later processes load it
instead of compiling. numba ships no type hints; this wrapper keeps each kernel's own
signature visible to mypy.

Kernels must not recurse: numba cannot reload a recursive function from its cache (the
process crashes), so loops that halve use an explicit stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])

#: Compile once per machine and keep the code; the GIL is released while a kernel runs.
njit = cast(Callable[[F], F], numba.njit(cache=True, nogil=True))

#: The same, for the small steps a kernel calls per path and quarter: inlined into their
#: caller (numba IR inlining), so the arrays they take (named tuples of arrays, mostly) are
#: not reference-counted again on every call.
inline = cast(Callable[[F], F], numba.njit(cache=True, nogil=True, inline="always"))
