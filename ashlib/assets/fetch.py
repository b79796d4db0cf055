"""Fetch the paper-scale data sets and pretrained weights listed in ``data_manifest.yaml``, verified.

    python -m ashlib fetch --list                        # what can be fetched, where it goes, what is there
    python -m ashlib fetch svhn_test dtd                 # download, verify, unpack
    python -m ashlib fetch cifar10 --allow-unverified    # a benchmark's name: every file it reads, weights too
    python -m ashlib fetch cifar10/train                 # one set of a benchmark (used_by): CIFAR-10's archive
    python -m ashlib fetch all --allow-unverified        # every download entry a benchmark uses
    python -m ashlib fetch --verify all                  # check what is on disk, download nothing
    python -m ashlib fetch imagenet_val                  # licence-gated: instructions, checks what you placed

Where things go is where the loaders look:

- data sets (manifest ``datasets:``): under the data root (``root=`` / ``--root``, default
  ``$ASHLIB_CACHE/data``, i.e. :func:`ashlib.assets.data.data_root`). A file that is not unpacked is saved as
  ``<root>/<target>``; an archive is kept as ``<root>/<file>`` and unpacked into ``<root>/<unpack_to>``,
  which must give ``<root>/<target>``, the path :func:`ashlib.assets.data.load_benchmark` reads.
- weights (manifest ``weights:``): ``$ASHLIB_CACHE/weights/<file>`` (:func:`weights_dir`; ``root`` does not
  apply). A zip of weights is unpacked into ``$ASHLIB_CACHE/weights/<name>/`` and the files it promises
  (``contents_expected``) are copied next to the others, under the names pretrained_model accepts.

Everything is downloaded here, by one downloader (below), and weights are found and verified here
only: :func:`weights_path` gives :func:`ashlib.assets.models.pretrained_model` the checked path of its weights
file (looking where ``fetch`` puts it, downloading it the same way when it is missing and has a published
checksum, refusing a file it cannot check);
:mod:`ashlib.assets.models` builds the network and loads it. (:mod:`ashlib.assets.data` checks the data sets it reads.)

Downloads go through :func:`pooch.retrieve` with the manifest's ``md5:``/``sha256:`` as ``known_hash``:
pooch streams into a temporary file in the destination folder, checks the hash and only then moves it
to its name, so a failed, interrupted or mismatching download never appears under the final name.
torchvision weights carry only the first 8 hex digits of their sha256 (torch hub convention); that
prefix is checked on the temporary file before it is moved. An archive is unpacked into a hidden staging
folder (tar members that would land outside it are refused) whose top-level entries are then renamed
into place, so a half-unpacked set never looks complete.

Checksums: a file already on disk is checked (size first where the manifest gives one, then its hash)
and used only if it matches; a truncated or corrupt file is deleted and downloaded again. Entries with
no published checksum are refused unless ``allow_unverified=True`` (``--allow-unverified``): the file is
then downloaded (or the one already there taken as it is), its sha256 printed and recorded next to it in
``<file>.sha256`` (trust on first use); later runs verify against that record and tell you to add it to
the manifest. Without it, a weights file with nothing to check it against is "unchecked": ``--verify``
fails on it and :func:`weights_path` refuses it. Files written here get the mode any new file gets
(0644 under umask 022), not the 0600 of the temporary files they are written through.

System copies: an entry with ``system_paths`` (Fashion-MNIST, which Debian's ``dataset-fashion-mnist``
installs under ``/usr/share/datasets/fashion-mnist``) is read there when present; its decompressed
content is checked against ``content_sha256`` and nothing is downloaded.

Offline or unreachable: a short connect timeout (``timeout=``, default 10 s), then one error that says
what to download by hand, its checksum, and exactly where to save it.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pooch

from ashlib import cache_dir
from ashlib._checks import ParameterError, check_choice

__all__ = [
    "COMMAND", "FetchError", "DownloadError", "ChecksumMismatch", "UnverifiedError", "Status",
    "fetchable", "manual_entries", "entry", "destination", "download_path", "fetch", "fetch_all", "verify",
    "recorded_sha256", "record_sha256", "cli_name", "command", "WeightsNotFoundError", "weights_dir",
    "weights_entry", "weights_path", "listing", "add_arguments", "main",
]

#: How the command is spelled in messages (``ashlib/book/cli.py`` registers ``fetch`` under it).
COMMAND = "python -m ashlib fetch"
CONNECT_TIMEOUT = 10.0  # seconds to wait for a connection; offline fails at once or after this
READ_TIMEOUT = 60.0  # seconds without a byte before a started download is given up
CHUNK = 1 << 20
ARCHIVES = {"tar": "tar", "tar.gz": "tar", "tgz": "tar", "tar.bz2": "tar", "tar.xz": "tar", "zip": "zip"}
OK_STATES = ("verified", "present", "unverified", "generated")
BIG = 1 << 30  # files this large get a "hashing ..." line, so a long checksum does not look like a hang


class FetchError(RuntimeError):
    """An entry could not be put in place; the message says why and what to do by hand."""


class DownloadError(FetchError):
    """No URL of the entry could be downloaded (offline, refused, HTTP error, timeout)."""


class ChecksumMismatch(FetchError):
    """A file's content differs from its checksum (published, or recorded at first download)."""


class UnverifiedError(FetchError):
    """The entry has no checksum to verify a download against and ``allow_unverified`` was not given."""


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither on disk nor downloadable; the message says what to fetch and where."""


@dataclass
class Status:
    """What is on disk for one manifest entry.

    ``state``: ``verified`` (checksum matches), ``present`` (in place where the loaders look, but there
    is nothing to re-check it against, e.g. an unpacked archive that was not kept), ``unverified``
    (present, no checksum known), ``generated`` (made at load time), ``missing``, ``corrupt``
    (checksum or size differs), ``incomplete`` (archive there and fine, not unpacked / not set up),
    ``failed`` (a fetch raised; ``message`` is the error).
    """

    name: str
    state: str
    paths: list[Path] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.state in OK_STATES

    def __str__(self) -> str:
        first, *rest = (self.message or "").split("\n")
        line = f"{self.name:<28} {self.state:<10} {first}".rstrip()
        return "\n".join([line, *("    " + r if r else r for r in rest)])


@dataclass(frozen=True)
class _Expected:
    alg: str  # "md5" | "sha256" | "sha256-prefix"
    value: str
    recorded: Path | None = None  # the <file>.sha256 this came from (trust on first use), else manifest

    @property
    def known_hash(self) -> str | None:
        """pooch's ``known_hash`` (None for a prefix, which pooch cannot check; we check it ourselves)."""
        return None if self.alg == "sha256-prefix" else f"{self.alg}:{self.value}"

    @property
    def short(self) -> str:
        """For one-line status messages."""
        if self.alg == "sha256-prefix":
            return f"sha256 {self.value}..."
        return f"{'recorded ' if self.recorded else ''}{self.alg} {self.value[:12]}..."

    def __str__(self) -> str:
        if self.alg == "sha256-prefix":
            return f"sha256 starting with {self.value}"
        if self.recorded is not None:
            return f"sha256 {self.value} (recorded in {self.recorded} at its first download; none is published)"
        return f"{self.alg} {self.value}"


# ------------------------------------------------------------------------------------------- entries


def _data():
    import ashlib.assets.data  # imports torch: only when an entry is handled, not when the CLI is built

    return ashlib.assets.data


def _entries() -> dict[str, dict]:
    """Every manifest entry by name, with ``_section`` ("datasets" or "weights") added (copies)."""
    m = _data().manifest()
    out: dict[str, dict] = {}
    for section in ("datasets", "weights"):
        for e in m.get(section) or []:
            out[e["name"]] = {**e, "_section": section}
    return out


def entry(name: str) -> dict:
    """The manifest entry ``name`` (data set or weights); unknown names raise ParameterError."""
    entries = _entries()
    return entries[check_choice("name", name, entries)]


def fetchable() -> list[str]:
    """Names of the entries that can be downloaded (kind ``download``), data sets first."""
    return [n for n, e in _entries().items() if e.get("kind") == "download"]


def manual_entries() -> list[str]:
    """Names of the licence-gated entries (kind ``manual``, ImageNet) that must be fetched by hand."""
    return [n for n, e in _entries().items() if e.get("kind") == "manual"]


def _all_names(entries: dict[str, dict]) -> list[str]:
    """What ``all`` means: every download entry some benchmark uses (``used_by`` not empty)."""
    return [n for n, e in entries.items() if e.get("kind") == "download" and e.get("used_by")]


def _benchmark_names(bench: str, entries: dict[str, dict]) -> list[str]:
    """The entries benchmark ``bench`` reads (``used_by`` names ``<bench>/<set>``)."""
    return [n for n, e in entries.items() if any(str(u).split("/")[0] == bench for u in e.get("used_by") or [])]


def _set_names(word: str, entries: dict[str, dict]) -> list[str]:
    """The entries that give one set of a benchmark (``used_by`` holds ``word``, e.g. ``cifar10/SVHN``);
    ParameterError naming the benchmark's sets if none does."""
    bench = word.split("/")[0]
    sets = sorted({str(u) for e in entries.values() for u in e.get("used_by") or [] if str(u).startswith(bench + "/")})
    check_choice("name", word, sets)
    return [n for n, e in entries.items() if word in (e.get("used_by") or [])]


def _expand(names, entries: dict[str, dict]) -> list[str]:
    """What the command-line names select, in manifest order per name: ``all``; a benchmark's name
    (``cifar10``, ``imagenet``, ``fmnist``): every entry it reads, weights included, whether or not an
    entry has that name too; ``<benchmark>/<set>`` as in ``used_by`` (``cifar10/train``: the CIFAR-10
    archive alone); else an entry's name."""
    benchmarks = list(_data().BENCHMARKS)
    out: list[str] = []
    for n in names:
        if n == "all":
            group = _all_names(entries)
        elif n in benchmarks:
            group = _benchmark_names(n, entries)
        elif str(n).split("/")[0] in benchmarks and "/" in str(n):
            group = _set_names(n, entries)
        else:
            group = [check_choice("name", n, [*entries, "all", *benchmarks])]
        for m in group:
            if m not in out:
                out.append(m)
    return out


def cli_name(e: dict) -> str:
    """The word that selects entry ``e`` alone on the command line: its name, or, where a benchmark has
    that name (``cifar10``: the benchmark), the first set it gives (``cifar10/train``)."""
    return e["used_by"][0] if e["name"] in _data().BENCHMARKS and e.get("used_by") else e["name"]


def command(e: dict, *flags: str, root=None) -> str:
    """The fetch command for entry ``e`` alone, with ``flags`` and, for a data set, ``--root``."""
    where = [] if e.get("_section") == "weights" or root is None else ["--root", str(root)]
    return " ".join([COMMAND, cli_name(e), *flags, *where])


# --------------------------------------------------------------------------------------------- paths


def weights_dir() -> Path:
    """Folder of the weight files, where ``fetch`` puts them and :func:`weights_path` looks:
    ``$ASHLIB_CACHE/weights``."""
    return cache_dir("weights")


def _unpack(e: dict) -> str | None:
    kind = e.get("unpack") or "none"
    if kind == "none":
        return None
    if kind not in ARCHIVES:
        raise FetchError(f"{e['name']}: unpack={kind!r} in data_manifest.yaml is not one of none, "
                         f"{', '.join(ARCHIVES)}.")
    return kind


def _root(e: dict, root) -> Path:
    return weights_dir() if e["_section"] == "weights" else _data().data_root(root)


def _dest(e: dict, root) -> Path:
    """The path the loaders read (data set target, weights file, or a weights zip's folder)."""
    if e.get("kind") == "embedded-package":
        return _data().source_path(e)
    if e["_section"] == "weights":
        return weights_dir() / (e.get("unpack_to") or e["name"] if _unpack(e) else e["file"])
    return _root(e, root) / e["target"]


def _file(e: dict, root) -> Path:
    """Where the downloaded file is kept: the target itself, or ``<root>/<file>`` for an archive."""
    return _root(e, root) / e["file"] if _unpack(e) else _dest(e, root)


def _into(e: dict, root) -> Path:
    if e["_section"] == "weights":
        return _dest(e, root)
    return _root(e, root) / e.get("unpack_to", ".")


def destination(name: str, root: str | Path | None = None) -> Path:
    """Where the loaders read entry ``name`` (``<data root>/<target>`` or ``$ASHLIB_CACHE/weights/<file>``)."""
    return _dest(entry(name), root)


def download_path(name: str, root: str | Path | None = None) -> Path:
    """Where the downloaded file of entry ``name`` is kept (the destination itself unless it is unpacked)."""
    e = entry(name)
    if e.get("kind") != "download":
        raise ParameterError(f"name={name!r} is not allowed: expected a download entry "
                             f"({', '.join(fetchable())}).")
    return _file(e, root)


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path: str | Path) -> str | None:
    """The sha256 recorded beside ``path`` (``<file>.sha256``) when it was first downloaded with no
    published checksum (trust on first use), else None."""
    rec = _record_path(Path(path))
    if not rec.is_file():
        return None
    words = rec.read_text(encoding="utf-8").split()
    return words[0].lower() if words and re.fullmatch(r"[0-9a-fA-F]{64}", words[0]) else None


def record_sha256(path: Path, sha256: str, e: dict, url: str) -> Path:
    """Write ``<file>.sha256`` for a download of manifest entry ``e`` that has no published checksum."""
    rec = _record_path(path)
    today = datetime.date.today().isoformat()
    rec.write_text(
        f"{sha256}  {path.name}\n"
        f"# recorded by ashlib.assets.fetch on {today} from {url}\n"
        f"# no checksum is published for '{e['name']}': this is trust on first use. Later fetches and\n"
        f"# --verify check the file against it. Add  sha256: {sha256}  to the entry in data_manifest.yaml.\n",
        encoding="utf-8")
    return rec


def _expected(e: dict, path: Path) -> _Expected | None:
    """The checksum a file must have: published (sha256 > md5 > sha256 prefix), else recorded, else None."""
    for alg in ("sha256", "md5"):
        if e.get(alg):
            return _Expected(alg, str(e[alg]).lower())
    if e.get("sha256_prefix"):
        return _Expected("sha256-prefix", str(e["sha256_prefix"]).lower())
    recorded = recorded_sha256(path)
    return _Expected("sha256", recorded, _record_path(path)) if recorded else None


def _present(path: Path) -> bool:
    """As ashlib.assets.data checks a target: a file, or a folder holding something."""
    return path.is_file() or (path.is_dir() and any(True for _ in os.scandir(path)))


# ------------------------------------------------------------------------------------------ checking


def _say(text: str) -> None:
    print(text, flush=True)


def _hash(path: Path, alg: str) -> str:
    size = path.stat().st_size
    if size >= BIG:
        _say(f"  hashing {path} ({size / 1e9:.1f} GB, {alg}) ...")
    return pooch.file_hash(str(path), alg=alg)


def _check(path: Path, exp: _Expected, size: int | None = None) -> str | None:
    """None if ``path`` matches ``exp`` (and ``size``, where the manifest gives one), else what differs."""
    actual_size = path.stat().st_size
    if size is not None and exp.recorded is None and actual_size != size:
        return f"{actual_size} bytes, expected {size} (truncated or a different file)"
    alg = "sha256" if exp.alg == "sha256-prefix" else exp.alg
    actual = _hash(path, alg)
    ok = actual.startswith(exp.value) if exp.alg == "sha256-prefix" else actual == exp.value
    return None if ok else f"{alg} {actual} ({actual_size} bytes), expected {exp}"


def _alternatives(e: dict) -> list[tuple[Path, bool]]:
    """Other places :func:`weights_path` looks for a weights file: (path, same content as the entry's file)."""
    if e["_section"] != "weights" or _unpack(e):
        return []
    folder = weights_dir()
    out = [(folder / f, False) for f in e.get("local_names", [])]
    if e.get("source") == "torchvision":
        import torch

        out.append((Path(torch.hub.get_dir()) / "checkpoints" / e["file"], True))
    return out


def _own_expected(e: dict, path: Path, same: bool) -> _Expected | None:
    """What a weights file at ``path`` is checked against: the entry's checksum (published, else recorded)
    where it holds the entry's file (``same``), else only the sha256 recorded beside it (ASH's copy of a
    DenseNet is another file than DICE's, so DICE's checksum does not apply to it)."""
    if same:
        return _expected(e, path)
    recorded = recorded_sha256(path)
    return _Expected("sha256", recorded, _record_path(path)) if recorded else None


def _published(e: dict) -> bool:
    return any(e.get(k) for k in ("sha256", "md5", "sha256_prefix", "content_sha256"))


def _unchecked_text(e: dict, path: Path, root=None) -> str:
    """Why a file with nothing to check it against is not used, and the commands that settle it."""
    text = (f"{path}: no checksum is published for it and none is recorded beside it, so it cannot be checked "
            f"and is not used. If you trust it as it is, record its sha256 once (every later fetch, --verify and "
            f"load checks against it): {command(e, '--allow-unverified', root=root)}")
    if e["_section"] == "weights":
        text += f"; or load it as your own weights: -p checkpoint {path} (checkpoint='{path}' in Python)"
    if _published(e):
        text += f"; or delete it and fetch the published, checked file: {command(e, root=root)}"
    return text + "."


def _usual_mode(path) -> None:
    """Give a file written through a temporary file (created 0600) the mode a new file gets here
    (0644 under umask 022), so a shared data root stays readable."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _content_problem(path: Path, e: dict) -> str | None:
    """None if ``path``'s decompressed content has the entry's ``content_sha256``, else what differs."""
    import gzip
    import hashlib

    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    actual = hashlib.sha256(data).hexdigest()
    return None if actual == e["content_sha256"] else (
        f"decompressed content has sha256 {actual}, expected {e['content_sha256']}")


def _system_copy(e: dict) -> Status | None:
    """The entry's file as a system package installed it (``system_paths``; Debian's
    ``dataset-fashion-mnist``), checked by content; None when there is none."""
    for path in (Path(p) for p in e.get("system_paths") or []):
        if path.is_file():
            problem = _content_problem(path, e)
            package = e.get("debian_package", "a system package")
            if problem:
                return Status(e["name"], "corrupt", [path], f"{path} (from {package}): {problem}")
            return Status(e["name"], "verified", [path], f"{path} (installed by {package}; content sha256 matches; "
                                                         "read there, nothing downloaded)")
    return None


def _by_hand(e: dict, root, exp: _Expected | None) -> str:
    """What to download by hand, its checksum and exactly where to put it."""
    file, dest = _file(e, root), _dest(e, root)
    urls = e.get("urls") or []
    lines = [f"To fetch '{e['name']}' ({e.get('title', e['name'])}) by hand:",
             f"  download  {urls[0] if urls else '(no URL in the manifest)'}"]
    lines += [f"  or        {u}" for u in urls[1:]]
    lines.append(f"  checksum  {exp if exp else 'none published'}")
    lines.append(f"  save as   {file}")
    then = command(e, *([] if exp else ["--allow-unverified"]), root=root)
    if _unpack(e):
        into = _into(e, root)
        lines.append(f"  then run  {then}   (verifies it, unpacks it into {into}"
                     + (f", giving {dest})" if e["_section"] == "datasets" else ")"))
    else:
        lines.append(f"  then run  {then}   (verifies it)")
    lines += [f"  or        {a}" for a in e.get("alternatives", [])]
    return "\n".join(lines)


def verify(name: str, root: str | Path | None = None) -> Status:
    """Check what is on disk for entry ``name`` against the manifest; downloads and changes nothing.

    Archives are hashed if present, and their unpacked target must be in place; ImageNet (manual)
    archives are md5-checked where the instructions put them (``<root>/imagenet``).
    """
    e = entry(name)
    kind = e.get("kind")
    if kind == "generated":
        return Status(name, "generated", [], f"made at load time by {e.get('generator', 'ashlib')}")
    if kind == "embedded-package":
        data = _data()
        try:
            path = data.checked_source(name)
        except data.ChecksumError as err:
            return Status(name, "corrupt", [], str(err))
        except FileNotFoundError as err:
            return Status(name, "missing", [], str(err))
        return Status(name, "verified", [path], f"sha256 matches ({e['package']} {e['version']}): {path}")
    if kind == "manual":
        return _verify_manual(e, root)
    if kind != "download":
        raise FetchError(f"{name}: kind {kind!r} in data_manifest.yaml is not one fetch knows.")
    file, dest = _file(e, root), _dest(e, root)
    exp = _expected(e, file)
    if file.is_file():
        if exp is None and e["_section"] == "weights":  # pretrained_model would refuse it
            return Status(name, "unchecked", [file], _unchecked_text(e, file))
        if exp is None:
            state, what = "unverified", f"{file} (no checksum published; none recorded)"
        else:
            problem = _check(file, exp, e.get("size"))
            if problem:
                return Status(name, "corrupt", [file], f"{file}: {problem}. Run {command(e, root=root)} to "
                                                       "download it again.")
            state, what = "verified", f"{file} ({exp.short} matches)"
        if _unpack(e) and not _present(dest):
            flags = [] if exp else ["--allow-unverified"]
            return Status(name, "incomplete", [file], f"{what} is not unpacked: {dest} is missing. Run "
                                                      f"{command(e, *flags, root=root)} to unpack it.")
        if _unpack(e) and e["_section"] == "datasets":
            unpacked = _verify_unpacked(e, root, dest)
            if unpacked.state != "verified":  # what the loaders would refuse, --verify reports
                return unpacked
            what += f"; {unpacked.message}"
        return Status(name, state, [file, dest] if _unpack(e) else [file], what)
    if _unpack(e) and _present(dest):
        return _verify_unpacked(e, root, dest)
    system = _system_copy(e)
    if system is not None:
        return system
    for alt, same in _alternatives(e):
        if alt.is_file():
            alt_exp = _own_expected(e, alt, same)
            if alt_exp is None:
                return Status(name, "unchecked", [alt], _unchecked_text(e, alt))
            problem = _check(alt, alt_exp, e.get("size") if same else None)
            if problem:
                flags = [] if exp else ["--allow-unverified"]
                return Status(name, "corrupt", [alt], f"{alt}: {problem}. Run {command(e, *flags)} to download "
                                                      "the entry's own file.")
            return Status(name, "verified", [alt], f"{alt} ({alt_exp.short} matches)")
    return Status(name, "missing", [], f"{dest} is missing.\n" + _by_hand(e, root, exp))


def _target_status(e: dict, root, dest: Path) -> Status:
    """A data set's target as the loaders see it (:func:`ashlib.assets.data.check_target`: layout, then every
    file against ``contents_md5``, its own checksum or the record written at unpack time)."""
    name = e["name"]
    kind, problem = _data().check_target(e, _data().data_root(root))
    if problem is None:
        return Status(name, "verified", [dest], f"{dest} (every file matches its recorded checksum)")
    state = {"unchecked": "unchecked", "layout": "incomplete", "missing": "missing"}.get(kind, "corrupt")
    return Status(name, state, [dest], problem)


def _verify_unpacked(e: dict, root, dest: Path) -> Status:
    """An unpacked target: datasets as the loaders check them; weights folders are only present."""
    if e["_section"] != "datasets":
        return Status(e["name"], "present", [dest], f"{dest} (unpacked)")
    return _target_status(e, root, dest)


def adopt(name: str, root: str | Path | None = None) -> Status:
    """Record the sha256 of every file of a data set you unpacked yourself (trust on first use), so the
    loaders and ``--verify`` can check it from now on.

    Only a folder that nothing checks yet is recorded, and only after its layout is checked; one that the
    manifest's checksums cover (CIFAR's ``contents_md5``), or whose files fail the record they have, is
    reported as ``--verify`` reports it and never recorded anew. An entry that is no unpacked data set (a
    single file, weights) has nothing to adopt: its ``--verify`` status, saying how it is checked."""
    e = entry(name)
    if e.get("kind") not in ("download", "manual") or e["_section"] != "datasets" or (
            e.get("kind") == "download" and not _unpack(e)):
        return _nothing_to_adopt(e, root)
    dest = _dest(e, root)
    if not _present(dest):
        return Status(name, "missing", [], f"{dest} is missing; nothing to adopt.")
    layout = _data()._layout_problem(e, dest, _data().data_root(root))
    if layout:
        return Status(name, "incomplete", [dest], layout)
    status = _target_status(e, root, dest)
    if status.state == "corrupt":
        why = _why_not_adopted(e, root, dest)
        return Status(name, status.state, status.paths, f"not adopted: {status.message}{why}")
    if status.state != "unchecked":
        return Status(name, status.state, status.paths, f"nothing to adopt: {status.message}")
    record = _record_contents(e, dest)
    status = _target_status(e, root, dest)
    if status.state != "verified":  # changed while it was hashed
        return status
    return Status(name, "verified", [dest], f"{dest}: the sha256 of its {len(_data().files_under(dest))} files "
                                            f"is recorded in {record} (trust on first use); the loaders and "
                                            "--verify check them from now on")


def _why_not_adopted(e: dict, root, dest: Path) -> str:
    record = _contents_record(dest)
    if e.get("contents_md5") or not record.is_file():
        return (". Its files are checked against the md5s published in data_manifest.yaml (contents_md5), "
                "which --adopt cannot replace")
    return (f". If you changed them on purpose and trust them as they are, delete {record} and run "
            f"{command(e, '--adopt', root=root)} again")


def _nothing_to_adopt(e: dict, root) -> Status:
    """--adopt on an entry that is no unpacked data set: what --verify says, and how the entry is checked."""
    status = verify(e["name"], root)
    if e.get("kind") == "generated":
        how = "it is made at load time"
    elif status.state == "unchecked" or not _published(e):
        how = (f"a file with nothing to check it against is taken as it is, its sha256 recorded, by "
               f"{command(e, '--allow-unverified', root=root)}")
    else:
        how = "it is checked against its published checksum"
    return Status(e["name"], status.state, status.paths, "nothing to adopt: --adopt records data-set folders you "
                                                         f"unpacked yourself; {how}. {status.message}")


class _Hashing:
    """A read-only stream that hashes what passes through it (md5), for archives read once from a pipe."""

    def __init__(self, raw):
        import hashlib

        self.raw, self.md5, self.bytes = raw, hashlib.md5(), 0

    def read(self, n=-1):
        chunk = self.raw.read(n)
        self.md5.update(chunk)
        self.bytes += len(chunk)
        return chunk


def imagenet_train_subset(archive, root: str | Path | None = None, per_class: int | None = None) -> Status:
    """Extract from ``ILSVRC2012_img_train.tar`` (a path, or ``"-"`` for standard input, e.g. piped from
    a download) only the first ``per_class`` images of each class (default: what the imagenet benchmark
    uses, IMAGENET_N_TRAIN / 1000 = 10) into ``<root>/imagenet/train/<wnid>/``, reading the 147 GB archive
    once as a stream, so that only about 1 GB is written. The archive's md5 is checked as it streams
    (the manifest's ``files``); on a mismatch, or a wrong number of classes, nothing is kept. The files
    written are recorded as ``fetch`` records unpacked archives, so the loaders check them."""
    data = _data()
    e = entry("imagenet_train")
    per_class = per_class or -(-data.IMAGENET_N_TRAIN // data.IMAGENET_NUM_CLASSES)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ParameterError(f"per_class={per_class!r} is not allowed: expected an integer >= 1.")
    dest = _dest(e, root)
    expected = next((f for f in e.get("files", []) if f["file"] == "ILSVRC2012_img_train.tar"), {})
    if _present(dest):
        raise FetchError(f"{dest} is not empty; remove it first (nothing was read).")
    staging = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    raw = sys.stdin.buffer if str(archive) == "-" else open(archive, "rb")  # noqa: SIM115
    stream = _Hashing(raw)
    classes = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as outer:
            for member in outer:
                if not (member.isfile() and member.name.endswith(".tar")):
                    continue
                wnid = PurePosixPath(member.name).stem
                kept = 0
                with tarfile.open(fileobj=outer.extractfile(member), mode="r|") as inner:
                    for image in inner:
                        if kept >= per_class or not image.isfile():
                            continue
                        name = PurePosixPath(image.name).name
                        if not name.lower().endswith(data.IMG_EXTENSIONS) or name.startswith("."):
                            continue
                        target = staging / wnid / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(inner.extractfile(image).read())
                        kept += 1
                classes += 1
                if classes % 100 == 0:
                    _say(f"imagenet_train: {classes} classes, {stream.bytes / 2**30:.1f} GiB read")
        while stream.read(1 << 20):  # the rest of the archive (tar padding), for the md5
            pass
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
    md5 = stream.md5.hexdigest()
    problem = None
    if expected.get("md5") and md5 != expected["md5"]:
        problem = f"md5 {md5} ({stream.bytes} bytes), expected {expected['md5']} (data_manifest.yaml)"
    elif classes != data.IMAGENET_NUM_CLASSES:
        problem = f"{classes} class archives, expected {data.IMAGENET_NUM_CLASSES}"
    if problem:
        shutil.rmtree(staging, ignore_errors=True)
        return Status("imagenet_train", "corrupt", [], f"{archive}: {problem}; nothing was kept.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.rmdir()
    os.rename(staging, dest)
    _record_contents(e, dest)
    return _target_status(e, root, dest)


def _manual_files(e: dict, root) -> list[tuple[dict, Path]]:
    # The instructions put the files in {root}/imagenet, the parent of the target (imagenet/val): the
    # manifest has no field for it, so it is derived here.
    folder = _data().data_root(root) / PurePosixPath(e["target"]).parent
    return [(f, folder / f["file"]) for f in e.get("files", [])]


def _instructions(e: dict, root) -> str:
    return _data().how_to_get(e, _data().data_root(root)).strip().removeprefix("- ")


def _verify_manual(e: dict, root, *, hash_archives: bool = True) -> Status:
    name, dest = e["name"], _dest(e, root)
    lines, bad, have = [], [], []
    if hash_archives or not _present(dest):
        for f, path in _manual_files(e, root):
            if not path.is_file():
                lines.append(f"{path}: not there (md5 {f['md5']})")
                continue
            problem = _check(path, _Expected("md5", f["md5"]), f.get("size"))
            (bad if problem else have).append(path)
            lines.append(f"{path}: {problem}" if problem else f"{path}: md5 {f['md5']} matches")
    if bad:
        return Status(name, "corrupt", bad, f"{len(bad)} file(s) do not match; delete and download them "
                                            "again:\n" + "\n".join(lines))
    if _present(dest):
        status = _target_status(e, root, dest)
        return Status(name, status.state, [dest, *have], status.message + "".join("\n" + x for x in lines))
    state = "incomplete" if have else "missing"
    return Status(name, state, have, f"{dest} is missing. This licence-gated set is not downloaded "
                                      f"automatically: {_instructions(e, root)}" + "".join("\n" + x for x in lines))


# ----------------------------------------------------------------------------------------- downloads


class _FileDownloader:
    """pooch-style downloader for ``file://`` URLs (a local mirror, tests)."""

    def __call__(self, url: str, output_file, pooch_obj=None) -> None:
        src = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        if not src.is_file():
            raise FileNotFoundError(f"{src}: no such file")
        if hasattr(output_file, "write"):
            with open(src, "rb") as fh:
                shutil.copyfileobj(fh, output_file, CHUNK)
        else:
            shutil.copyfile(src, output_file)


def _default_downloader(url: str, progress: bool, timeout: float):
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme == "file":
        return _FileDownloader()
    if scheme in ("http", "https"):
        return pooch.HTTPDownloader(progressbar=progress, chunk_size=CHUNK,
                                    timeout=(timeout, max(timeout, READ_TIMEOUT)))
    if scheme == "ftp":
        return pooch.FTPDownloader(progressbar=progress, timeout=timeout)
    return pooch.choose_downloader(url, progressbar=progress)


class _Tracked:
    """Wraps a downloader: counts calls, and checks what pooch cannot (a sha256 prefix) or records the
    sha256 of an unverified download, on the temporary file, before pooch moves it into place."""

    def __init__(self, inner, exp: _Expected | None):
        self.inner, self.exp = inner, exp
        self.calls, self.sha256, self.actual = 0, None, None

    def __call__(self, url, output_file, pooch_obj=None):
        self.calls += 1
        self.inner(url, output_file, pooch_obj)
        _usual_mode(getattr(output_file, "name", output_file))  # before pooch moves it to its name
        if self.exp is None or self.exp.alg == "sha256-prefix":
            self.sha256 = pooch.file_hash(str(output_file), alg="sha256")
            if self.exp is not None and not self.sha256.startswith(self.exp.value):
                self.actual = f"sha256 {self.sha256}"
                raise ValueError(f"SHA256 hash of downloaded file does not start with {self.exp.value}")


@contextlib.contextmanager
def _quiet_pooch():
    """pooch logs 'Downloading ...' and 'use this as known_hash' at INFO; we print our own lines."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


def _download(e: dict, root, file: Path, exp: _Expected | None, *, downloader, progress: bool,
              timeout: float, by_hand: bool = True) -> tuple[str, _Tracked]:
    """Download the entry's file to ``file`` (absent on entry) from its first working URL; the error
    says what failed and, with ``by_hand``, how to fetch the file by hand."""
    urls = e.get("urls") or []
    failures, mismatch = [], None
    for url in urls:
        tracked = _Tracked(downloader or _default_downloader(url, progress, timeout), exp)
        size = f", {e['size'] / 1e6:.1f} MB" if e.get("size") else ""
        _say(f"{e['name']}: downloading {url} -> {file}{size}")
        try:
            with _quiet_pooch():
                pooch.retrieve(url, known_hash=exp.known_hash if exp else None, fname=file.name,
                               path=file.parent, downloader=tracked, progressbar=progress)
            return url, tracked
        except ValueError as err:  # checksum mismatch (pooch's message, or ours for a prefix)
            actual = tracked.actual
            if actual is None:
                got = re.search(r"but got ([0-9a-fA-F]+)", str(err))
                actual = f"{exp.alg} {got.group(1)}" if got and exp else f"({err})"
            mismatch = (f"the file downloaded from {url} does not match the manifest: expected {exp}, "
                        f"got {actual}. It was deleted; nothing was saved as {file}.")
            if exp is not None and exp.recorded is not None:
                mismatch += (f" If the publisher changed the file on purpose, delete {exp.recorded} to "
                             "accept the new one (and check why).")
            failures.append(mismatch)
        except Exception as err:  # offline, refused, timeout, HTTP error, missing local file
            failures.append(f"could not download {url}: {type(err).__name__}: {err}")
    if not urls:
        failures.append("the manifest lists no URL")
    detail = "\n".join(failures)
    cls = ChecksumMismatch if mismatch else DownloadError
    raise cls(f"{e['name']}: {detail}" + (f"\n{_by_hand(e, root, exp)}" if by_hand else ""))


class _SafeUntar(pooch.Untar):
    """pooch.Untar, refusing members that would land outside the folder (pooch filters on 3.12+ only)."""

    def _extract_file(self, fname, extract_dir):
        with tarfile.open(fname, "r") as tar:
            members = tar.getmembers()
            base = os.path.realpath(extract_dir)
            for m in members:
                target = os.path.realpath(os.path.join(base, m.name))
                if os.path.isabs(m.name) or os.path.commonpath([base, target]) != base or m.isdev() or (
                        (m.issym() or m.islnk()) and (os.path.isabs(m.linkname) or ".." in
                                                      PurePosixPath(m.linkname).parts)):
                    raise FetchError(f"{fname}: archive member {m.name!r} would be written outside "
                                     f"{extract_dir}; refusing to unpack it.")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(extract_dir, members=members, filter="data")
            else:  # Python < 3.11.4: the checks above stand in for the filter
                tar.extractall(extract_dir, members=members)


def _unpack_archive(e: dict, root, archive: Path) -> list[str]:
    """Unpack into a staging folder next to the destination, then rename its top-level entries into
    ``_into(e)`` (replacing what is there). Returns the top-level names."""
    into = _into(e, root)
    base = _root(e, root)
    staging = base / f".ashlib-unpack-{e['name']}"
    if staging.exists():
        shutil.rmtree(staging)
    kind = ARCHIVES[_unpack(e)]
    _say(f"{e['name']}: unpacking {archive.name} into {into}")
    processor = _SafeUntar(extract_dir=str(staging)) if kind == "tar" else pooch.Unzip(extract_dir=str(staging))
    try:
        try:
            processor(str(archive), "download", None)
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as err:
            raise FetchError(f"{e['name']}: could not unpack {archive}: {type(err).__name__}: {err}") from err
        into.mkdir(parents=True, exist_ok=True)
        names = sorted(p.name for p in staging.iterdir())
        for n in names:
            dst = into / n
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            elif dst.exists() or dst.is_symlink():
                dst.unlink()
            os.replace(staging / n, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return names


def _contents_record(dest: Path) -> Path:
    """Where the sha256 of every unpacked file of a data set is kept (:func:`ashlib.assets.data.contents_record`)."""
    return _data().contents_record(dest)


def _record_contents(e: dict, dest: Path) -> Path:
    """Hash every file of an unpacked target that the loaders see (:func:`ashlib.assets.data.check_target`
    checks them against this record, as ``verify`` does once the archive is gone)."""
    files = _data().files_under(dest)
    if len(files) > 1000:
        _say(f"{e['name']}: recording the sha256 of {len(files)} unpacked files ...")
    record = {"entry": e["name"], "target": dest.name,
              "files": {rel: pooch.file_hash(str(p), alg="sha256") for rel, p in files.items()}}
    path = _contents_record(dest)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(record, indent=0, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _after_unpack(e: dict, root, names: list[str], force: bool) -> list[Path]:
    """Check the unpacked layout gives what the loaders read and record its files' sha256; place
    weights a zip promises."""
    dest = _dest(e, root)
    if e["_section"] == "datasets":
        if not _present(dest):
            raise FetchError(f"{e['name']}: unpacked into {_into(e, root)}, but {dest} (the path ashlib.assets.data "
                             f"reads) is not there; the archive's top level holds: {', '.join(names) or 'nothing'}. "
                             f"unpack_to/target of '{e['name']}' in data_manifest.yaml do not fit this archive.")
        _record_contents(e, dest)
        return [dest]
    placed, missing = [], []
    for fname in e.get("contents_expected", []):
        hits = sorted(dest.rglob(fname))
        target = weights_dir() / fname
        if not hits:
            missing.append(fname)
        elif force or not target.exists():
            tmp = target.with_name(target.name + ".part")
            shutil.copyfile(hits[0], tmp)
            os.replace(tmp, target)
            # the archive was checked (or let in by --allow-unverified): what it held is recorded, so
            # weights_path can check the copy at every load
            record_sha256(target, pooch.file_hash(str(target), alg="sha256"), e, f"{hits[0]} (unpacked)")
            placed.append(target)
        else:
            placed.append(target)
    if missing:
        raise FetchError(f"{e['name']}: unpacked into {dest}, but it holds no {', '.join(missing)} "
                         "(contents_expected in data_manifest.yaml).")
    return [dest, *placed]


def _used(e: dict, root, dest: Path) -> bool:
    """Whether the downloaded file itself is what the loaders use: weights, a file not unpacked, or an
    archive whose unpacked target is not verified (so fetch would unpack it)."""
    return e["_section"] == "weights" or not _unpack(e) or _verify_unpacked(e, root, dest).state != "verified"


def _placed_alternative(e: dict, allow_unverified: bool) -> Status | None:
    """A weights file already under another accepted name or in torch hub's cache, checked as
    :func:`weights_path` checks it; with ``allow_unverified`` one with nothing to check it against gets
    its sha256 recorded (you vouch for it). None: nothing usable there, the entry's file is downloaded."""
    for alt, same in _alternatives(e):
        if not alt.is_file():
            continue
        exp = _own_expected(e, alt, same)
        where = f"{alt} is in place (pretrained_model looks there too); not downloaded"
        if exp is None and allow_unverified:
            sha = pooch.file_hash(str(alt), alg="sha256")
            rec = record_sha256(alt, sha, e, "a file already on disk")
            return Status(e["name"], "unverified", [alt], f"{where}; its sha256 {sha} is recorded in {rec} "
                                                          "(trust on first use)")
        problem = _check(alt, exp, e.get("size") if same else None) if exp else "nothing to check it against"
        if problem is None:
            return Status(e["name"], "verified", [alt], f"{where} ({exp.short} matches)")
        _say(f"{e['name']}: {alt} is not used: {problem}")
    return None


def _fetch_download(e: dict, root, *, force: bool, progress: bool, downloader, allow_unverified: bool,
                    timeout: float) -> Status:
    name = e["name"]
    file, dest, unpack = _file(e, root), _dest(e, root), _unpack(e)
    notes: list[str] = []
    aside = file.with_name(file.name + ".previous")
    if aside.is_file() and not file.exists():  # a forced download was killed: put the old file back
        os.replace(aside, file)
    exp = _expected(e, file)

    if not force:
        if file.is_file():
            problem = _check(file, exp, e.get("size")) if exp else None
            if problem is None:
                if exp is None and not allow_unverified and _used(e, root, dest):
                    raise UnverifiedError(f"{name}: {_unchecked_text(e, file, root)}")
                if exp is None and allow_unverified:
                    sha = pooch.file_hash(str(file), alg="sha256")
                    rec = record_sha256(file, sha, e, "a file already on disk")
                    notes.append(f"sha256 {sha} recorded in {rec}; add  sha256: {sha}  to '{name}' in "
                                 "data_manifest.yaml")
                paths = [file]
                if unpack and not _present(dest):
                    paths += _after_unpack(e, root, _unpack_archive(e, root, file), force)
                    notes.append("unpacked: " + ", ".join(map(str, paths[1:])))
                elif unpack and e["_section"] == "datasets" and _verify_unpacked(e, root, dest).state != "verified":
                    shutil.rmtree(dest) if dest.is_dir() else dest.unlink()  # unrecorded or changed files
                    paths += _after_unpack(e, root, _unpack_archive(e, root, file), force)
                    notes.append("unpacked again from the checked archive (the unpacked files were unrecorded "
                                 "or differed): " + ", ".join(map(str, paths[1:])))
                elif unpack:
                    paths.append(dest)
                state = "verified" if exp else "unverified"
                what = f"already there, {exp.short} matches" if exp else "already there, no checksum to check it against"
                return Status(name, state, paths, "; ".join([f"{file} ({what})", *notes]))
            _say(f"{name}: {file} is corrupt ({problem}); deleting it and downloading it again")
            file.unlink()
            notes.append("replaced a corrupt copy")
        elif unpack and _present(dest) and (unpacked := _verify_unpacked(e, root, dest)).state in (
                *OK_STATES, "unchecked", "incomplete"):
            return unpacked  # verified; or a copy nothing records (--adopt or --force), or a wrong layout
        elif unpack and _present(dest):
            _say(f"{name}: {unpacked.message.split(': its files differ', 1)[0]}: its files differ from their "
                 "checksums; downloading and unpacking it again")
            notes.append("replaced changed unpacked files")
        elif (system := _system_copy(e)) is not None and system.ok:
            return system
        elif (placed := _placed_alternative(e, allow_unverified)) is not None:
            return placed

    if exp is None and not allow_unverified:
        raise UnverifiedError(
            f"{name}: no checksum is published for {e['file']} ({(e.get('urls') or ['?'])[0]}), so a download "
            f"could not be verified. Downloading it unverified is opt-in: pass allow_unverified=True "
            f"(--allow-unverified); its sha256 is then printed and recorded in {_record_path(file)} "
            "(trust on first use) so that later fetches are checked against it and you can add it to "
            "data_manifest.yaml." + (f" Manifest note: {e['note']}" if e.get("note") else "")
            + "".join(f" {alt} is there but cannot be checked either; --allow-unverified records it as it "
                      "is, instead of downloading." for alt, _ in _alternatives(e) if alt.is_file()))

    file.parent.mkdir(parents=True, exist_ok=True)
    if file.exists():  # force: keep the old file until the new one is verified
        os.replace(file, aside)
    else:
        aside = None
    try:
        url, tracked = _download(e, root, file, exp, downloader=downloader, progress=progress,
                                 timeout=timeout)
    except BaseException:
        if aside is not None:
            os.replace(aside, file)
        raise
    if aside is not None:
        aside.unlink()
    if exp is None:
        rec = record_sha256(file, tracked.sha256, e, url)
        _say(f"{name}: no checksum is published; the sha256 of the download is\n    {tracked.sha256}\n"
             f"  recorded in {rec} (trust on first use): add  sha256: {tracked.sha256}  to the entry "
             f"'{name}' in data_manifest.yaml.")
        notes.append(f"UNVERIFIED download, sha256 {tracked.sha256} recorded in {rec}")
    elif e.get("size") and exp.recorded is None and file.stat().st_size != e["size"]:
        notes.append(f"note: {exp} matches but the size is {file.stat().st_size}, not the manifest's "
                     f"{e['size']}: fix size in data_manifest.yaml")
    paths = [file]
    if unpack:
        paths += _after_unpack(e, root, _unpack_archive(e, root, file), force)
        notes.append("unpacked: " + ", ".join(map(str, paths[1:])))
    what = f"downloaded, {exp.short} verified" if exp else "downloaded"
    return Status(name, "verified" if exp else "unverified", paths, "; ".join([f"{file} ({what})", *notes]))


def _fetch(name: str, root, *, force: bool, progress: bool, downloader, allow_unverified: bool,
           timeout: float) -> Status:
    e = entry(name)
    kind = e.get("kind")
    if kind == "download":
        return _fetch_download(e, root, force=force, progress=progress, downloader=downloader,
                               allow_unverified=allow_unverified, timeout=timeout)
    if kind == "manual":
        return _verify_manual(e, root, hash_archives=False)
    status = verify(name, root)  # embedded-package / generated: nothing to download
    if not status.ok:
        raise ChecksumMismatch(status.message)
    return status


def fetch(name: str, root: str | Path | None = None, *, force: bool = False, progress: bool = True,
          downloader=None, allow_unverified: bool = False, timeout: float = CONNECT_TIMEOUT) -> list[Path]:
    """Put manifest entry ``name`` where the loaders look, verified; return the paths it occupies.

    Download entries: the downloaded file (then, for archives, the unpacked target). A file already
    there that matches its checksum is not downloaded again (``force=True`` downloads it anyway, keeping
    the old file until the new one is verified); a corrupt or truncated one is deleted and downloaded
    again. ``downloader``: a pooch downloader (callable ``(url, output_file, pooch)``) to use instead
    of pooch's HTTP downloader (connect timeout ``timeout`` seconds) or the built-in ``file://`` one.
    ``allow_unverified``: download entries with no published checksum (sha256 printed and recorded).
    ``root``: the data root for data sets (default ``$ASHLIB_CACHE/data``); weights always go to
    ``$ASHLIB_CACHE/weights``.

    Manual entries (ImageNet): prints the instructions unless the target is in place, checks the
    archives you placed, and returns what is there ([] if nothing).

    Raises :class:`DownloadError` (offline etc.; the message says what to download by hand, its
    checksum and where to save it), :class:`ChecksumMismatch`, :class:`UnverifiedError`,
    :class:`FetchError` (unpacking).
    """
    status = _fetch(name, root, force=force, progress=progress, downloader=downloader,
                    allow_unverified=allow_unverified, timeout=timeout)
    _say(str(status))
    if status.state == "corrupt":
        raise ChecksumMismatch(status.message)
    return status.paths


def fetch_all(names=None, root: str | Path | None = None, *, force: bool = False, progress: bool = True,
              downloader=None, allow_unverified: bool = False,
              timeout: float = CONNECT_TIMEOUT) -> dict[str, Status]:
    """Fetch several entries (default: ``all``, every download entry a benchmark uses), going on after
    a failure; returns each entry's :class:`Status` (a failure has state ``failed`` and the error as
    message) and prints one status line per entry."""
    entries = _entries()
    names = _expand(["all"] if names is None else ([names] if isinstance(names, str) else names), entries)
    out: dict[str, Status] = {}
    for i, n in enumerate(names, 1):
        try:
            status = _fetch(n, root, force=force, progress=progress, downloader=downloader,
                            allow_unverified=allow_unverified, timeout=timeout)
        except Exception as err:  # report and go on with the next entry
            msg = str(err) if isinstance(err, FetchError) else f"{type(err).__name__}: {err}"
            status = Status(n, "failed", [], msg.removeprefix(f"{n}: "))
        out[n] = status
        _say(f"[{i}/{len(names)}] {status}")
    return out


# ---------------------------------------------------------------------------- weights for the models


def weights_entry(name: str) -> dict:
    """The manifest's weights entry ``name`` (with ``_section``); KeyError if there is none."""
    weights = {n: e for n, e in _entries().items() if e["_section"] == "weights"}
    if name not in weights:
        raise KeyError(f"data_manifest.yaml has no weights entry {name!r}.")
    return weights[name]


def _missing_weights(e: dict, model: str, dest: Path, reason: str) -> WeightsNotFoundError:
    check = (f"its sha256 must start with {e['sha256_prefix']}" if e.get("sha256_prefix")
             else f"sha256 {e['sha256']}" if e.get("sha256")
             else "no checksum is published for it")
    flags = [] if _published(e) else ["--allow-unverified"]
    alternatives = "".join(f"\n  or: {a}" for a in e.get("alternatives", []))
    return WeightsNotFoundError(
        f"{model}: pretrained weights '{e['name']}' ({e['title']}) are not available: {reason}. "
        f"Fetch them: {command(e, *flags)}; or download {e['urls'][0]} and save it as {dest} ({check})"
        + ("" if _published(e) else f", then record it once: {command(e, *flags)}")
        + f"; or use your own file: -p checkpoint PATH (checkpoint=PATH in Python).{alternatives}"
    )


def _download_weights(e: dict, model: str, dest: Path, progress: bool) -> Path:
    """Download the weights file to ``dest`` as :func:`fetch` does (checked before it gets its name).
    Only a file with a published checksum is downloaded here: one without needs ``fetch --allow-unverified``."""
    exp = _expected(e, dest)
    if exp is None:
        raise _missing_weights(e, model, dest, f"no file at {dest}, and no checksum is published for it, so it is "
                                               "not downloaded without your --allow-unverified")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download(e, None, dest, exp, downloader=None, progress=progress, timeout=CONNECT_TIMEOUT, by_hand=False)
    except FetchError as err:  # offline, HTTP error, checksum mismatch: one message saying what to do
        raise _missing_weights(e, model, dest, f"download failed ({type(err).__name__}: {err})") from err
    return dest


def _verify_weights(e: dict, path: Path, same: bool) -> None:
    """Check ``path`` as :func:`_own_expected` says; :class:`ashlib.assets.data.ChecksumError` if it differs
    or there is nothing to check it against."""
    exp = _own_expected(e, path, same)
    if exp is None:
        raise _data().ChecksumError(_unchecked_text(e, path))
    problem = _check(path, exp, e.get("size") if same else None)
    if problem:
        again = command(e, "--force", *([] if _published(e) else ["--allow-unverified"]))
        raise _data().ChecksumError(f"{path} does not match '{e['name']}': {problem}. Delete it and fetch it "
                                    f"again ({again}).")


def weights_path(name: str, model: str | None = None, *, checkpoint: str | Path | None = None,
                 download: bool = True, progress: bool = True) -> Path:
    """The file of weights entry ``name`` (``model``: who asks, for messages), verified.

    ``checkpoint`` (a file you supply: you vouch for it) is returned as it is: it is not the published
    file, so it is not checked against its checksum. Otherwise the file is looked up at
    ``$ASHLIB_CACHE/weights/<file>``, then under the entry's ``local_names`` there (ASH's names for the
    DenseNets), then in torch hub's cache (torchvision files). A file found is checked every time: the
    entry's file against its published checksum (sha256 or its prefix) or the sha256 recorded beside it;
    a file under another name against the sha256 recorded beside it only. One with nothing to check it
    against is refused (:class:`ashlib.assets.data.ChecksumError` saying how to record it), as is one
    that differs. Only then, with ``download`` and a published checksum, it is downloaded where
    :func:`fetch` puts it, by the same code (pooch, checked before the file gets its name); a file with
    no published checksum is never downloaded here (``fetch NAME --allow-unverified``). Missing, offline
    or a failed download: :class:`WeightsNotFoundError` saying what to run, or download from where and
    where to put it.
    """
    e = {**weights_entry(name), "_section": "weights"}
    model = model or name
    dest = weights_dir() / e["file"]
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise _missing_weights(e, model, dest, f"checkpoint={str(checkpoint)!r} is not a file")
        return path
    found = next(((p, same) for p, same in [(dest, True), *_alternatives(e)] if p.is_file()), None)
    if found is None:
        if not download:
            raise _missing_weights(e, model, dest, f"no file at {dest} and download=False")
        return _download_weights(e, model, dest, progress)
    _verify_weights(e, *found)
    return found[0]


# --------------------------------------------------------------------------------------------- CLI


def _checksum_text(e: dict) -> str:
    if e.get("kind") == "manual":
        return "md5 (" + ", ".join(f["file"] for f in e.get("files", [])) + ")"
    for alg in ("sha256", "md5"):
        if e.get(alg):
            return f"{alg} {str(e[alg])[:12]}..."
    if e.get("sha256_prefix"):
        return f"sha256 {e['sha256_prefix']}..."
    return "none (--allow-unverified)"


def listing(root: str | Path | None = None) -> str:
    """A table of the download and manual entries: checksum, size, whether something is at the
    destination (no hashing: use ``verify``), and the destination."""
    entries = _entries()
    in_all = set(_all_names(entries))
    rows = [("name", "kind", "checksum", "size", "on disk", "destination")]
    for n, e in entries.items():
        if e.get("kind") not in ("download", "manual"):
            continue
        dest, file = _dest(e, root), (_file(e, root) if e.get("kind") == "download" else None)
        there = (_present(dest) or bool(file and file.is_file()) or any(p.is_file() for p, _ in _alternatives(e))
                 or any(Path(p).is_file() for p in e.get("system_paths") or []))
        size = f"{e['size'] / 1e6:.1f} MB" if e.get("size") else (f"{e['size_mb']:.1f} MB" if e.get("size_mb") else "?")
        kind = e["kind"] + ("" if n in in_all or e["kind"] == "manual" else " (not in 'all')")
        rows.append((n, kind, _checksum_text(e), size, "present" if there else "missing", str(dest)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
    skipped = sum(1 for e in entries.values() if e.get("kind") not in ("download", "manual"))
    lines.append(f"'all' = every download entry a benchmark uses; a benchmark's name ({', '.join(_data().BENCHMARKS)}) "
                 "= every entry it reads, weights included; BENCHMARK/SET (as used_by names it, e.g. cifar10/train, "
                 "cifar10/SVHN) = that set's entries. Manual entries (ImageNet) are licence-gated: "
                 f"'{COMMAND} NAME' prints how to get them and checks what you placed. Not listed: {skipped} "
                 "entries that installed packages ship or ashlib generates (nothing to fetch; --verify NAME "
                 "checks them).")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the fetch command's arguments to ``parser`` (a subcommand parser); run it with :func:`main`."""
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="manifest entries (see --list); a benchmark's name (cifar10, imagenet, ...): every "
                             "entry it reads, weights included; BENCHMARK/SET (cifar10/train: the CIFAR-10 archive "
                             "alone); or 'all': every download entry a benchmark uses")
    parser.add_argument("--root", default=None,
                        help="data root for the data sets (default $ASHLIB_CACHE/data, where load_benchmark "
                             "looks); weights always go to $ASHLIB_CACHE/weights")
    parser.add_argument("--force", action="store_true", help="download again even if a verified file is there")
    parser.add_argument("--verify", action="store_true",
                        help="check what is on disk against the manifest checksums; download nothing")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="download entries that have no published checksum, or accept such a file already "
                             "there; its sha256 is printed and recorded next to the file (trust on first use)")
    parser.add_argument("--adopt", action="store_true",
                        help="record the sha256 of the files of a data set you unpacked yourself (trust on first "
                             "use), so the loaders can check it from now on; a folder that fails the checksums "
                             "it has is not recorded. A weights file is recorded with --allow-unverified")
    parser.add_argument("--subset-from", metavar="TAR", default=None,
                        help="imagenet_train: stream ILSVRC2012_img_train.tar (a path, or - for standard input) "
                             "and keep only the images the benchmark uses (--per-class, default 10 per class)")
    parser.add_argument("--per-class", type=int, default=None, help="--subset-from: images per class")
    parser.add_argument("--list", action="store_true", help="list the entries, their checksums and destinations")
    parser.add_argument("--timeout", type=float, default=CONNECT_TIMEOUT,
                        help=f"seconds to wait for a connection (default {CONNECT_TIMEOUT:g})")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return parser


def main(args=None) -> int:
    """Run the fetch command; ``args``: an argparse Namespace from :func:`add_arguments`, or a list of
    command-line words. Exit code: 0 all in place, 1 something missing/failed/corrupt, 2 usage error."""
    if args is None or isinstance(args, (list, tuple)):
        parser = add_arguments(argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0]))
        try:
            args = parser.parse_args(args)
        except SystemExit as stop:
            return int(stop.code or 0)
    names, root = list(getattr(args, "names", []) or []), getattr(args, "root", None)
    force, check = getattr(args, "force", False), getattr(args, "verify", False)
    allow = getattr(args, "allow_unverified", False)
    if getattr(args, "list", False):
        print(listing(root))
        if not names:
            return 0
    if not names:
        print(f"error: name what to fetch (or 'all'); see {COMMAND} --list", file=sys.stderr)
        return 2
    adopting = getattr(args, "adopt", False)
    if adopting and (check or force or allow):
        print("error: --adopt records what is there; --verify/--force/--allow-unverified do not apply", file=sys.stderr)
        return 2
    if check and (force or allow):
        print("error: --verify downloads nothing; --force/--allow-unverified do not apply", file=sys.stderr)
        return 2
    try:
        names = _expand(names, _entries())
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    subset = getattr(args, "subset_from", None)
    if subset is not None:
        if names != ["imagenet_train"]:
            print("error: --subset-from applies to imagenet_train alone", file=sys.stderr)
            return 2
        try:
            status = imagenet_train_subset(subset, root, getattr(args, "per_class", None))
        except (FetchError, ParameterError, OSError, tarfile.TarError) as err:
            status = Status("imagenet_train", "failed", [], str(err))
        print(status, flush=True)
        return 0 if status.ok else 1
    if adopting:
        statuses = {}
        for i, n in enumerate(names, 1):
            try:
                statuses[n] = adopt(n, root)
            except FetchError as err:
                statuses[n] = Status(n, "failed", [], str(err))
            print(f"[{i}/{len(names)}] {statuses[n]}", flush=True)
    elif check:
        statuses = {}
        for i, n in enumerate(names, 1):
            statuses[n] = verify(n, root)
            print(f"[{i}/{len(names)}] {statuses[n]}", flush=True)
    else:
        statuses = fetch_all(names, root, force=force, progress=getattr(args, "progress", True),
                             allow_unverified=allow, timeout=getattr(args, "timeout", CONNECT_TIMEOUT))
    bad = [n for n, s in statuses.items() if not s.ok]
    unverified = [n for n, s in statuses.items() if s.state == "unverified"]
    summary = f"{len(statuses) - len(bad)} of {len(statuses)} in place"
    if unverified:
        summary += f" ({len(unverified)} without a published checksum: {', '.join(unverified)})"
    if bad:
        summary += f"; not in place: {', '.join(f'{n} ({statuses[n].state})' for n in bad)}"
    print(summary, flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
