"""Cache entries that verify themselves: computed results on disk that are never served wrong.

Every entry (cached activations, trained checkpoints) is one ``torch.save`` file holding
``{"format", "key", "digest", "value"}``: the full description of what it was computed from (``key``,
e.g. the model's and the data's digests and the layer) and a sha256 of its content (``digest``).
:func:`load` returns the value only if the file is such an entry, for exactly the key asked for, with
an intact content; anything else (a truncated or foreign file, another entry copied over it, a value
edited in place) is reported by path (:class:`DamagedEntryWarning`), deleted and treated as missing,
so the caller recomputes it. :func:`save` writes to a unique temporary file in the same folder and
renames it into place, so readers see either the old entry or the new one, never half of one, even
across processes. :func:`locked` serialises the processes that would compute the same entry: the
second waits, then finds the first one's result.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from filelock import FileLock
from torch import Tensor

__all__ = ["FORMAT", "DamagedEntryWarning", "digest", "tensor_digest", "save", "load", "locked"]

FORMAT = 1


class DamagedEntryWarning(UserWarning):
    """A cache entry could not be used as it is (named in the message); it was deleted and is recomputed."""


def digest(value) -> str:
    """sha256 of a tensor (shape, dtype, bytes) or of a mapping of names to tensors (a state dict)."""
    h = hashlib.sha256()
    items = value.items() if isinstance(value, Mapping) else [("", value)]
    for name, t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"cache values are tensors or mappings of tensors, got {type(t).__name__} at {name!r}")
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tensor_digest(*tensors: Tensor) -> str:
    """sha256 of the tensors' shapes, dtypes and bytes: changes whenever the data change (the content
    keys of cached checkpoints and activations, :mod:`ashlib.models` and :mod:`ashlib.features`)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save(path: str | Path, value, key: str) -> Path:
    """Write ``value`` as the entry for ``key`` at ``path``, atomically (unique temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save({"format": FORMAT, "key": key, "digest": digest(value), "value": value}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _discard(path: Path, reason: str) -> None:
    warnings.warn(f"{path}: damaged cache entry ({reason}); deleted, it will be recomputed.",
                  DamagedEntryWarning, stacklevel=3)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def load(path: str | Path, key: str, check=None):
    """The value of the entry at ``path`` if it exists and is intact for ``key``, else None.

    ``check(value)``, if given, returns a reason why a well-formed value is still unusable (e.g. a
    wrong number of rows), or None. A damaged entry is reported (:class:`DamagedEntryWarning`, naming
    the file and what is wrong), deleted, and None is returned.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, random bytes, not a torch file
        _discard(path, f"unreadable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or not {"key", "digest", "value"} <= set(entry):
        _discard(path, "not an ashlib cache entry (an old format, or another file copied over it)")
        return None
    if entry["key"] != key:
        _discard(path, f"computed from something else: its key is {entry['key'][:80]!r}..., expected {key[:80]!r}...")
        return None
    try:
        actual = digest(entry["value"])
    except TypeError as err:
        _discard(path, str(err))
        return None
    if actual != entry["digest"]:
        _discard(path, f"content changed: sha256 {actual[:16]}..., recorded {str(entry['digest'])[:16]}...")
        return None
    reason = check(entry["value"]) if check is not None else None
    if reason:
        _discard(path, reason)
        return None
    return entry["value"]


@contextlib.contextmanager
def locked(path: str | Path, timeout: float = -1):
    """Hold an inter-process lock named after ``path`` (``<path>.lock``) while computing its entry."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(path.name + ".lock")), timeout=timeout):
        yield
