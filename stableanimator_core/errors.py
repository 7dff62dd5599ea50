"""User-facing errors.

Every error a user can trigger (bad input, missing weights, out of memory) is raised as one of these,
with a message that says what happened and what to do. ComfyUI shows the message verbatim in its
error dialog, so messages are written for a person, not for a traceback reader.
"""

from __future__ import annotations


class StableAnimatorError(RuntimeError):
    """Base class: a problem the user can fix; the message says how."""


class CheckpointError(StableAnimatorError):
    """A model file is missing, truncated, unsafe or has the wrong architecture."""


class InputError(StableAnimatorError, ValueError):
    """An input (image, video, mask, setting) cannot be used as given."""


class NoFaceError(InputError):
    """No face was found where one is required."""


class NoPersonError(InputError):
    """No person was found where one is required."""


class DependencyError(StableAnimatorError, ImportError):
    """An optional dependency (onnxruntime, insightface, PyAV) is missing or broken."""


class OutOfMemoryError(StableAnimatorError):
    """The accelerator ran out of memory; the message names the setting that lowers memory use."""


_CPU_ALLOCATION_MESSAGES = ("DefaultCPUAllocator: can't allocate memory", "not enough memory", "std::bad_alloc",
                            "Cannot allocate memory")


def is_cpu_allocation_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the host running out of RAM (torch reports it as a RuntimeError, numpy as MemoryError)."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and
                                            any(m in str(exc) for m in _CPU_ALLOCATION_MESSAGES))
