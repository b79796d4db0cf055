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

The cache is bounded: after each :func:`save` under ``$ASHLIB_CACHE``, the least recently used
entries of the :data:`EVICTABLE` kinds are deleted until they total at most ``$ASHLIB_CACHE_MAX``
(:func:`max_bytes`); :func:`load` marks an entry as used (its modification time). The entry just
written and any entry whose lock another computation holds are never evicted, so one larger than the
limit stays alone. Eviction is safe across processes: a reader that loses the race finds the file
missing and recomputes. :func:`entries`, :func:`clear` and :func:`report` are ``python -m ashlib
cache list|clear``.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from ashlib import cache_dir
from ashlib._checks import ParameterError, check_choice, check_range

if TYPE_CHECKING:
    from torch import Tensor
# torch is imported where an entry is read or written: checking $ASHLIB_CACHE_MAX (a run does it
# before anything starts) must not wait for it

__all__ = ["FORMAT", "DamagedEntryWarning", "digest", "tensor_digest", "save", "load", "locked", "MAX_VARIABLE",
           "DEFAULT_MAX", "EVICTABLE", "KINDS", "Entry", "parse_size", "max_bytes", "entries", "lru_victims",
           "evict", "clear", "report", "human"]

FORMAT = 1

#: The environment variable that bounds the cache (:func:`max_bytes`).
MAX_VARIABLE = "ASHLIB_CACHE_MAX"
#: Its default. What one run caches: an embedded build tens of MiB (penultimate features of every set,
#: the MiSP chapter's reduced entries; inner-layer outputs stream, they are never cached), an ImageNet
#: run 0.7 GiB (the penultimate features of its 95,640 images). 2 GiB holds the largest of them with
#: room, so a run never evicts what a later chapter reads again (below one run's footprint, the entries
#: a chapter writes would evict the features it read at its start, and the next chapter would compute
#: them again), while old entries (other weights, other data) no longer pile up.
DEFAULT_MAX = "2G"
#: Kinds (folders of ``$ASHLIB_CACHE``) whose entries the limit evicts: network activations, which one
#: forward pass recomputes. Trained checkpoints (``models``: minutes to hours of training each) and
#: data-check stamps (``verified``: they spare hashing a data set again) are never evicted and do not
#: count against the limit; ``python -m ashlib cache clear --kind models`` removes them.
EVICTABLE = ("features",)
#: Kinds of entries :func:`save` writes (activations, checkpoints, data-check stamps).
KINDS = ("features", "models", "verified")
#: Folders of ``$ASHLIB_CACHE`` that hold no entries: downloads (``python -m ashlib fetch``) and the
#: fake data trees of rehearsals. Never listed as entries, evicted or cleared.
NOT_ENTRIES = ("data", "weights", "rehearsals")
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}  # powers of 1024


class DamagedEntryWarning(UserWarning):
    """A cache entry could not be used as it is (named in the message); it was deleted and is recomputed."""


def digest(value) -> str:
    """sha256 of a tensor (shape, dtype, bytes) or of a mapping of names to tensors (a state dict)."""
    import torch

    h = hashlib.sha256()
    items = value.items() if isinstance(value, Mapping) else [("", value)]
    for name, t in items:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"cache values are tensors or mappings of tensors, got {type(t).__name__} at {name!r}")
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tensor_digest(*tensors: Tensor) -> str:
    """sha256 of the tensors' shapes, dtypes and bytes: changes whenever the data change (the content
    keys of cached checkpoints and activations, :mod:`ashlib.assets.models` and :mod:`ashlib.assets.features`)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _nbytes(value) -> int:
    """The bytes of the tensors of ``value`` (a tensor or a mapping of names to tensors)."""
    items = value.values() if isinstance(value, Mapping) else [value]
    return sum(t.numel() * t.element_size() for t in items if hasattr(t, "element_size"))


def save(path: str | Path, value, key: str) -> Path:
    """Write ``value`` as the entry for ``key`` at ``path``, atomically (unique temporary file, then rename)."""
    path = Path(path)
    root = cache_dir().resolve()
    limit = max_bytes() if path.resolve().is_relative_to(root) else None  # a bad limit fails before writing
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    import torch

    try:
        torch.save({"format": FORMAT, "key": key, "digest": digest(value), "value": value}, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        needed = _nbytes(value)
        free = shutil.disk_usage(path.parent).free
        if getattr(err, "errno", None) == errno.ENOSPC or free < needed + 2**20:
            raise OSError(errno.ENOSPC, f"no space left to write the cache entry {path} ({needed / 2**20:.1f} MiB; "
                          f"{free / 2**20:.1f} MiB free on its disk). Free some space, lower $ASHLIB_CACHE_MAX or "
                          "point $ASHLIB_CACHE at a larger disk") from err
        raise
    finally:
        tmp.unlink(missing_ok=True)
    if limit is not None:
        evict(limit, keep=[path])
    return path


def _discard(path: Path, reason: str) -> None:
    warnings.warn(f"{path}: damaged cache entry ({reason}); deleted, it will be recomputed.",
                  DamagedEntryWarning, stacklevel=3)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _where_keys_differ(found: str, expected: str, context: int = 40) -> str:
    """Two keys, shown around the first character where they differ (keys are long; the difference,
    an epoch or a seed, is often near their end)."""
    at = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b), min(len(found), len(expected)))
    start = max(0, at - context)

    def around(text: str) -> str:
        return ("..." if start else "") + text[start:at + context] + ("..." if len(text) > at + context else "")

    return f"its key is {around(found)!r}, expected {around(expected)!r} (they differ from character {at})"


def load(path: str | Path, key: str, check=None):
    """The value of the entry at ``path`` if it exists and is intact for ``key``, else None.

    ``check(value)``, if given, returns a reason why a well-formed value is still unusable (e.g. a
    wrong number of rows), or None. A damaged entry is reported (:class:`DamagedEntryWarning`, naming
    the file and what is wrong), deleted, and None is returned.
    """
    path = Path(path)
    if not path.is_file():
        return None
    import torch

    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:  # evicted or cleared by another process since is_file
        return None
    except Exception as err:  # truncated, random bytes, not a torch file (torch's own advice, to load
        # it with weights_only=False, is wrong here: the entry is damaged, not unsafe)
        _discard(path, f"unreadable ({type(err).__name__}): truncated, overwritten, or not a file ashlib wrote")
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or not {"key", "digest", "value"} <= set(entry):
        _discard(path, "not an ashlib cache entry (an old format, or another file copied over it)")
        return None
    if entry["key"] != key:
        _discard(path, f"computed from something else: {_where_keys_differ(str(entry['key']), key)}")
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
    with contextlib.suppress(OSError):  # used now: the last to be evicted (gone meanwhile, read-only: no matter)
        os.utime(path)
    return entry["value"]


@contextlib.contextmanager
def locked(path: str | Path, timeout: float = -1):
    """Hold an inter-process lock named after ``path`` (``<path>.lock``) while computing its entry."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(path.name + ".lock")), timeout=timeout):
        yield


# ------------------------------------------------------------------------------- the size limit


def parse_size(text: str, name: str = MAX_VARIABLE) -> int | None:
    """Bytes from ``text``: a number with an optional suffix K, M, G or T (powers of 1024, an optional
    ``B`` or ``iB`` after it, any case): ``"300M"``, ``"2G"``, ``"1.5GiB"``, ``"1000"``. ``"none"``
    (or ``off``, ``unlimited``): None, no limit. ``"0"``: a limit of 0, every save evicts every other
    evictable entry. Anything else raises :class:`ParameterError` naming ``name`` and the value."""
    word = str(text).strip().lower()
    if word in ("none", "off", "unlimited"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])i?)?b?", word)
    if not match:
        raise ParameterError(f"{name}={text!r} is not allowed: expected a size in bytes with an optional suffix "
                             "K, M, G or T (powers of 1024), e.g. 300M or 2G; 0 (keep only the entry just "
                             "written) or none (no limit).")
    return int(float(match.group(1)) * 1024 ** _UNITS[match.group(2) or ""])


def max_bytes() -> int | None:
    """The limit on the evictable entries: ``$ASHLIB_CACHE_MAX`` (:func:`parse_size`; unset or empty:
    :data:`DEFAULT_MAX`); None: no limit."""
    return parse_size(os.environ.get(MAX_VARIABLE, "").strip() or DEFAULT_MAX)


@dataclass(frozen=True)
class Entry:
    """One cache entry on disk: its file, kind (folder), size in bytes and last use (a Unix time)."""

    path: Path
    kind: str
    size: int
    last_used: float


def _kinds(kinds: Iterable[str] | None) -> list[str]:
    present = [p.name for p in cache_dir().iterdir() if p.is_dir() and p.name not in NOT_ENTRIES]
    allowed = list(dict.fromkeys([*KINDS, *sorted(present)]))
    return allowed if kinds is None else [check_choice("kind", k, allowed) for k in kinds]


def entries(kinds: Iterable[str] | None = None) -> list[Entry]:
    """The entries (``<kind>/*.pt``) of ``$ASHLIB_CACHE`` of the given kinds (default all), least recently
    used first. Files removed while they are listed are left out."""
    found = []
    for kind in _kinds(kinds):
        folder = cache_dir() / kind
        if not folder.is_dir():
            continue
        for item in os.scandir(folder):
            if item.name.startswith(".") or not item.name.endswith(".pt"):
                continue  # temporary files, locks
            with contextlib.suppress(FileNotFoundError):
                st = item.stat()
                found.append(Entry(Path(item.path), kind, st.st_size, st.st_mtime))
    return sorted(found, key=lambda e: (e.last_used, e.path.name))


def lru_victims(found: Sequence[Entry], limit: int, spare: Callable[[Entry], bool] = lambda e: False) -> list[Entry]:
    """The entries to delete so that the others total at most ``limit`` bytes, least recently used
    first, never one that ``spare`` keeps (then the total may stay above the limit)."""
    total = sum(e.size for e in found)
    victims = []
    for e in sorted(found, key=lambda e: (e.last_used, e.path.name)):
        if total <= limit:
            break
        if not spare(e):
            victims.append(e)
            total -= e.size
    return victims


def in_use(path: Path) -> bool:
    """Whether a computation holds the entry's lock (:func:`locked`), in this process or another."""
    lock = path.with_name(path.name + ".lock")
    if not lock.exists():
        return False
    probe = FileLock(str(lock))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def _remove(victims: Iterable[Entry]) -> list[Entry]:
    removed = []
    for e in victims:
        with contextlib.suppress(FileNotFoundError):  # another process removed it first
            e.path.unlink()
            removed.append(e)
    return removed


def evict(limit: int, keep: Iterable[str | Path] = ()) -> list[Entry]:
    """Delete least recently used :data:`EVICTABLE` entries until they total at most ``limit`` bytes;
    never those in ``keep`` nor one in use (:func:`in_use`). Returns the deleted entries."""
    kept = {Path(p).resolve() for p in keep}
    return _remove(lru_victims(entries(EVICTABLE), limit,
                               lambda e: e.path.resolve() in kept or in_use(e.path)))


def clear(kinds: Iterable[str] | None = None, older_than_days: float | None = None,
          now: float | None = None) -> list[Entry]:
    """Delete the entries of ``kinds`` (default all: activations, checkpoints, stamps; never downloads)
    last used more than ``older_than_days`` days ago (default: any), except those in use. Returns them."""
    if older_than_days is not None:
        check_range("older_than_days", older_than_days, 0, math.inf)
    cutoff = math.inf if older_than_days is None else (time.time() if now is None else now) - 86400 * older_than_days
    return _remove(e for e in entries(kinds) if e.last_used < cutoff and not in_use(e.path))


def human(n: float) -> str:
    """``n`` bytes as ``"12.3 MiB"``."""
    if n < 1024:
        return f"{n:.0f} B"
    power = min(3, int(math.log(n, 1024)))
    return f"{n / 1024 ** power:.1f} {('KiB', 'MiB', 'GiB')[power - 1]}"


def _folder_bytes(folder: Path) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, name)).st_size
    return total


def report(found: Sequence[Entry] | None = None) -> str:
    """``python -m ashlib cache list``: every entry (kind, size, last used, file), most recently used
    last, the total per kind, the evictable total against the limit, and the folders that hold no entries."""
    found = entries() if found is None else found
    root = cache_dir()
    lines = [f"$ASHLIB_CACHE = {root}", f"{'kind':<10}{'size':>11}  {'last used':<17} entry"]
    lines += [f"{e.kind:<10}{human(e.size):>11}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(e.last_used))} "
              f"{e.path.name}" for e in found]
    for kind in dict.fromkeys(e.kind for e in found):
        mine = [e for e in found if e.kind == kind]
        note = "evictable" if kind in EVICTABLE else "never evicted"
        lines.append(f"{kind}: {len(mine)} entries, {human(sum(e.size for e in mine))} ({note})")
    lines.append(f"total: {len(found)} entries, {human(sum(e.size for e in found))}")
    limit = max_bytes()
    evictable = sum(e.size for e in found if e.kind in EVICTABLE)
    lines.append(f"limit ({MAX_VARIABLE}): {'none' if limit is None else human(limit)} on "
                 f"{', '.join(EVICTABLE)}, which hold {human(evictable)}")
    others = [f"{name} {human(_folder_bytes(root / name))}" for name in NOT_ENTRIES if (root / name).is_dir()]
    if others:
        lines.append(f"not entries (downloads, rehearsals; not counted): {', '.join(others)}")
    return "\n".join(lines)
