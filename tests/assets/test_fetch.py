"""ashlib.assets.fetch against local sources only: a throwaway HTTP server on 127.0.0.1 and file:// URLs.

Every test installs a tiny manifest (``ashlib.assets.data.manifest_path`` patched) whose entries point at files
made here, with checksums computed here; nothing touches the internet.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import shutil
import socket
import tarfile
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import ashlib.assets.data as data
from ashlib.assets import fetch as F


# --------------------------------------------------------------------------------------------- helpers


class _Handler(http.server.SimpleHTTPRequestHandler):
    timeout = 5  # a stuck client cannot hold the server thread for long

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A static file server on 127.0.0.1 (random port) serving ``tmp_path/srv``; counts GET requests."""
    folder = tmp_path / "srv"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_Handler, directory=str(folder)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(dir=folder, url=f"http://127.0.0.1:{httpd.server_address[1]}",
                              requests=httpd.requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buf.getvalue()


def _install(monkeypatch, path: Path, datasets: list[dict], weights: list[dict]) -> None:
    path.write_text(yaml.safe_dump({"datasets": datasets, "weights": weights}), encoding="utf-8")
    monkeypatch.setattr(data, "manifest_path", lambda: path)


@pytest.fixture
def world(tmp_path, server, monkeypatch):
    """Source files (served over HTTP or as file://), a manifest pointing at them, an empty data root."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    src = tmp_path / "src"
    src.mkdir()
    blob = os.urandom(50_000)
    sets = _targz({"setA/a.png": b"A" * 300, "setA/sub/b.png": b"B" * 200})
    zipped = _zip({"inner/thing.txt": b"thing"})
    free = _targz({"free/x.png": b"x" * 100})
    other = b"the publisher's file" * 10
    weights = b"pretend state dict" * 100
    wzip = _zip({"checkpoints/w10.pth": b"w10" * 50, "checkpoints/readme.txt": b"hi"})
    val = os.urandom(3000)
    for name, content in (("blob.bin", blob), ("sets.tar.gz", sets), ("free.tar.gz", free),
                          ("other.bin", b"not " + other), ("tvw.pth", weights), ("ckpt.zip", wzip)):
        (server.dir / name).write_bytes(content)
    (src / "zipped.zip").write_bytes(zipped)
    dead = f"http://127.0.0.1:{_closed_port()}"
    base = {"kind": "download", "title": "a test set", "sha256": None, "md5": None, "size": None,
            "used_by": ["test/x"]}
    datasets = [
        {**base, "name": "plain", "urls": [f"{server.url}/blob.bin"], "file": "blob.bin", "md5": _md5(blob),
         "size": len(blob), "unpack": "none", "target": "plain/blob.bin"},
        {**base, "name": "sets", "urls": [f"{server.url}/sets.tar.gz"], "file": "sets.tar.gz",
         "sha256": _sha(sets), "unpack": "tar.gz", "unpack_to": ".", "target": "setA"},
        {**base, "name": "zipped", "urls": [(src / "zipped.zip").as_uri()], "file": "zipped.zip",
         "md5": _md5(zipped), "unpack": "zip", "unpack_to": "z", "target": "z/inner"},
        {**base, "name": "nosum", "urls": [f"{server.url}/free.tar.gz"], "file": "free.tar.gz",
         "unpack": "tar.gz", "unpack_to": ".", "target": "free", "note": "No checksum published."},
        {**base, "name": "badsum", "urls": [f"{server.url}/other.bin"], "file": "other.bin",
         "md5": _md5(other), "unpack": "none", "target": "other/other.bin"},
        {**base, "name": "offline", "urls": [f"{dead}/gone.tar.gz"], "file": "gone.tar.gz",
         "md5": "0123456789abcdef0123456789abcdef", "unpack": "tar.gz", "unpack_to": ".", "target": "gone"},
        {"name": "manual_val", "kind": "manual", "title": "a licence-gated set", "urls": ["https://example.org"],
         "files": [{"file": "val.tar", "md5": _md5(val), "size": len(val)}], "md5": None, "sha256": None,
         "target": "mimg/val", "used_by": ["test/x"],
         "instructions": "log in, download val.tar into {root}/mimg, then sort it into {dest}/<class>"},
        {"name": "noise", "kind": "generated", "generator": "numpy", "used_by": ["test/x"]},
    ]
    wbase = {"kind": "download", "title": "test weights", "sha256": None, "size": None, "used_by": ["test/w"]}
    weight_entries = [
        {**wbase, "name": "tvw", "source": "torchvision", "urls": [f"{server.url}/tvw.pth"],
         "file": f"tvw-{_sha(weights)[:8]}.pth", "sha256_prefix": _sha(weights)[:8]},
        {**wbase, "name": "badprefix", "source": "torchvision", "urls": [f"{server.url}/tvw.pth"],
         "file": "bad-00000000.pth", "sha256_prefix": "00000000"},
        {**wbase, "name": "zipw", "source": "dropbox", "urls": [f"{server.url}/ckpt.zip"], "file": "ckpt.zip",
         "unpack": "zip", "contents_expected": ["w10.pth"], "used_by": []},
    ]
    _install(monkeypatch, tmp_path / "manifest.yaml", datasets, weight_entries)
    root = tmp_path / "root"
    return SimpleNamespace(root=root, server=server, src=src, blob=blob, sets=sets, free=free, other=other,
                           weights=weights, val=val, dead=dead, manifest=tmp_path / "manifest.yaml",
                           datasets=datasets, weight_entries=weight_entries)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------------------------- tests


def test_fetch_downloads_verifies_unpacks_and_is_idempotent(world):
    paths = F.fetch("sets", world.root, progress=False)
    target = world.root / "setA"
    assert paths == [world.root / "sets.tar.gz", target]
    assert (target / "a.png").read_bytes() == b"A" * 300 and (target / "sub" / "b.png").is_file()
    assert world.server.requests == ["/sets.tar.gz"]
    # the loaders' own check finds it where fetch put it
    ctx = data._PaperContext("cifar10", data.data_root(world.root), 0, "stat", data._entries())
    assert ctx.require("sets", folder=True) and ctx.path("sets") == target
    assert F.destination("sets", world.root) == target
    assert not [p for p in world.root.iterdir() if p.name.startswith((".ashlib-unpack", "tmp"))]

    mtime = (world.root / "sets.tar.gz").stat().st_mtime_ns
    assert F.fetch("sets", world.root, progress=False) == paths  # idempotent: no request
    assert world.server.requests == ["/sets.tar.gz"]
    assert (world.root / "sets.tar.gz").stat().st_mtime_ns == mtime
    assert F.verify("sets", world.root).state == "verified"

    (target / "a.png").write_bytes(b"edited")
    F.fetch("sets", world.root, force=True, progress=False)  # force: downloads and unpacks again
    assert world.server.requests == ["/sets.tar.gz"] * 2
    assert (target / "a.png").read_bytes() == b"A" * 300


def test_unpacked_target_without_archive_is_not_downloaded_again(world):
    F.fetch("sets", world.root, progress=False)
    (world.root / "sets.tar.gz").unlink()  # archive deleted after unpacking, to save space
    assert F.fetch("sets", world.root, progress=False) == [world.root / "setA"]
    assert len(world.server.requests) == 1
    assert F.verify("sets", world.root).state == "verified"  # against the sha256s recorded at unpack time


def test_verify_finds_junk_in_an_unpacked_folder_and_fetch_replaces_it(world, capsys):
    """Probe finding 6: a data file replaced by text used to pass --verify ("1 of 1 in place")."""
    F.fetch("sets", world.root, progress=False)
    (world.root / "sets.tar.gz").unlink()
    (world.root / "setA" / "a.png").write_text("not an image")
    (world.root / "setA" / "extra.png").write_bytes(b"x")
    status = F.verify("sets", world.root)
    assert status.state == "corrupt" and "1 changed (a.png); 1 added (extra.png)" in status.message
    assert f"--force --root {world.root}" in status.message
    assert F.main(["--verify", "sets", "--root", str(world.root)]) == 1
    assert F.fetch("sets", world.root, progress=False) == [world.root / "sets.tar.gz", world.root / "setA"]
    assert (world.root / "setA" / "a.png").read_bytes() == b"A" * 300
    assert F.verify("sets", world.root).state == "verified"
    F._contents_record(world.root / "setA").unlink()  # unpacked by an older version: nothing to check against
    status = F.verify("sets", world.root)  # the loaders refuse unrecorded files, so --verify does too
    assert status.state == "unchecked" and f"fetch sets --adopt --root {world.root}" in status.message
    assert F.main(["--verify", "sets", "--root", str(world.root)]) == 1
    F.fetch("sets", world.root, progress=False)  # unpacks again from the checked archive, and records it
    assert F.verify("sets", world.root).state == "verified" and len(world.server.requests) == 2
    F._contents_record(world.root / "setA").unlink()
    (world.root / "sets.tar.gz").unlink()
    assert F.verify("sets", world.root).state == "unchecked"
    assert F.main(["sets", "--adopt", "--root", str(world.root)]) == 0  # a copy the user trusts
    assert F.verify("sets", world.root).state == "verified"
    assert F.main(["sets", "--adopt", "--verify"]) == 2


def test_the_by_hand_instructions_name_the_data_root(world):
    with pytest.raises(F.DownloadError) as err:
        F.fetch("offline", world.root, progress=False, timeout=1)
    assert f"then run  {F.COMMAND} offline --root {world.root}" in str(err.value)


def test_plain_file_and_file_url_zip(world):
    assert F.fetch("plain", world.root, progress=False) == [world.root / "plain" / "blob.bin"]
    assert (world.root / "plain" / "blob.bin").read_bytes() == world.blob
    paths = F.fetch("zipped", world.root, progress=False)  # file:// source
    assert (world.root / "z" / "inner" / "thing.txt").read_bytes() == b"thing"
    assert paths == [world.root / "zipped.zip", world.root / "z" / "inner"]
    assert F.verify("zipped", world.root).state == "verified"


def test_wrong_checksum_is_refused_and_nothing_is_kept(world, capsys):
    with pytest.raises(F.ChecksumMismatch) as err:
        F.fetch("badsum", world.root, progress=False)
    msg = str(err.value)
    assert _md5(world.other) in msg  # expected
    assert _md5(b"not " + world.other) in msg  # actual
    assert f"{world.server.url}/other.bin" in msg and str(world.root / "other" / "other.bin") in msg
    assert _leftovers(world.root / "other") == []  # not under the final name, no temporary file
    assert F.verify("badsum", world.root).state == "missing"
    assert F.main(["badsum", "--root", str(world.root), "--no-progress"]) == 1


def test_wrong_sha256_prefix_is_refused(world):
    with pytest.raises(F.ChecksumMismatch) as err:
        F.fetch("badprefix", progress=False)
    assert "starting with 00000000" in str(err.value) and _sha(world.weights) in str(err.value)
    assert not (F.weights_dir() / "bad-00000000.pth").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_cached_file_is_detected_and_fetched_again(world, damage, capsys):
    path = world.root / "plain" / "blob.bin"
    F.fetch("plain", world.root, progress=False)
    if damage == "truncate":
        path.write_bytes(world.blob[: len(world.blob) // 2])
    else:
        path.write_bytes(bytes([world.blob[0] ^ 1]) + world.blob[1:])
    status = F.verify("plain", world.root)
    assert status.state == "corrupt" and not status.ok
    assert ("25000 bytes, expected 50000" if damage == "truncate" else _md5(world.blob)) in status.message
    assert F.main(["--verify", "plain", "--root", str(world.root)]) == 1
    F.fetch("plain", world.root, progress=False)
    assert path.read_bytes() == world.blob and len(world.server.requests) == 2
    assert "corrupt" in capsys.readouterr().out
    assert F.verify("plain", world.root).state == "verified"
    assert F.main(["--verify", "plain", "--root", str(world.root)]) == 0


def test_corrupt_archive_is_not_unpacked(world):
    world.root.mkdir()
    (world.root / "sets.tar.gz").write_bytes(world.sets[:100])  # a truncated download left by hand
    assert F.verify("sets", world.root).state == "corrupt"
    F.fetch("sets", world.root, progress=False)
    assert (world.root / "sets.tar.gz").read_bytes() == world.sets and len(world.server.requests) == 1
    assert (world.root / "setA" / "a.png").is_file()


def test_interrupted_download_leaves_nothing(world):
    def broken(url, output_file, pooch_obj):
        Path(output_file).write_bytes(world.blob[:1000])
        raise ConnectionError("connection reset halfway")

    with pytest.raises(F.DownloadError, match="connection reset halfway"):
        F.fetch("plain", world.root, progress=False, downloader=broken)
    assert _leftovers(world.root / "plain") == []


def test_unreachable_url_fails_fast_with_manual_instructions(world):
    start = time.monotonic()
    with pytest.raises(F.DownloadError) as err:
        F.fetch("offline", world.root, progress=False, timeout=2)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert f"{world.dead}/gone.tar.gz" in msg  # what to download
    assert "md5 0123456789abcdef0123456789abcdef" in msg  # its checksum
    assert f"save as   {world.root / 'gone.tar.gz'}" in msg  # exactly where
    assert str(world.root / "gone") in msg  # what unpacking it gives
    assert not isinstance(err.value, F.ChecksumMismatch)
    assert _leftovers(world.root) == []


def test_force_keeps_the_old_file_when_the_download_fails(world, monkeypatch):
    F.fetch("plain", world.root, progress=False)
    world.datasets[0]["urls"] = [f"{world.dead}/blob.bin"]
    _install(monkeypatch, world.manifest, world.datasets, world.weight_entries)
    with pytest.raises(F.DownloadError):
        F.fetch("plain", world.root, force=True, progress=False, timeout=2)
    assert (world.root / "plain" / "blob.bin").read_bytes() == world.blob
    assert _leftovers(world.root / "plain") == ["blob.bin"]
    # a forced download killed mid-way leaves the old file aside: the next fetch puts it back, verified
    os.replace(world.root / "plain" / "blob.bin", world.root / "plain" / "blob.bin.previous")
    assert F.fetch("plain", world.root, progress=False) == [world.root / "plain" / "blob.bin"]
    assert _leftovers(world.root / "plain") == ["blob.bin"] and len(world.server.requests) == 1


def test_null_checksum_needs_opt_in_then_records_sha256(world, capsys):
    with pytest.raises(F.UnverifiedError, match="allow_unverified=True"):
        F.fetch("nosum", world.root, progress=False)
    assert world.server.requests == [] and not (world.root / "free.tar.gz").exists()

    paths = F.fetch("nosum", world.root, progress=False, allow_unverified=True)
    sha = _sha(world.free)
    out = capsys.readouterr().out
    assert sha in out and "data_manifest.yaml" in out and "unverified" in out
    record = world.root / "free.tar.gz.sha256"
    assert record.read_text().split()[0] == sha
    assert paths[-1] == world.root / "free" and (world.root / "free" / "x.png").is_file()

    # later runs: checked against the recorded sha256, no flag needed, nothing downloaded
    assert F.verify("nosum", world.root).state == "verified"
    F.fetch("nosum", world.root, progress=False)
    assert len(world.server.requests) == 1
    (world.root / "free.tar.gz").write_bytes(b"junk")
    assert F.verify("nosum", world.root).state == "corrupt"
    F.fetch("nosum", world.root, progress=False)  # re-fetched against the record
    assert (world.root / "free.tar.gz").read_bytes() == world.free and len(world.server.requests) == 2


def test_weights_go_where_pretrained_model_looks(world):
    paths = F.fetch("tvw", progress=False)
    located = F.weights_path("tvw", "resnet50", download=False)  # what pretrained_model loads, prefix checked
    assert paths == [located] and located.parent == F.weights_dir()
    assert F.verify("tvw").state == "verified"

    # a zip of weights: unpacked into weights/<name>/, the promised file copied next to the others
    paths = F.fetch("zipw", progress=False, allow_unverified=True)
    assert (F.weights_dir() / "w10.pth").read_bytes() == b"w10" * 50
    assert F.weights_dir() / "zipw" / "checkpoints" / "readme.txt" in [p for p in
                                                                           (F.weights_dir() / "zipw").rglob("*")]
    assert F.weights_dir() / "w10.pth" in paths


def test_unsafe_archive_member_is_refused(world, monkeypatch):
    evil = _targz({"../escaped.txt": b"gotcha", "setA/a.png": b"A"})
    (world.server.dir / "sets.tar.gz").write_bytes(evil)
    world.datasets[1]["sha256"] = _sha(evil)
    _install(monkeypatch, world.manifest, world.datasets, world.weight_entries)
    with pytest.raises(F.FetchError, match="outside"):
        F.fetch("sets", world.root, progress=False)
    assert not (world.root.parent / "escaped.txt").exists() and not (world.root / "setA").exists()


def test_archive_layout_that_does_not_give_the_target_is_an_error(world, monkeypatch):
    world.datasets[1]["target"] = "setB"
    _install(monkeypatch, world.manifest, world.datasets, world.weight_entries)
    with pytest.raises(F.FetchError, match=r"setB.*is not there.*setA"):
        F.fetch("sets", world.root, progress=False)


def test_manual_entry_prints_instructions_and_checks_placed_files(world, capsys):
    assert F.fetch("manual_val", world.root, progress=False) == []
    out = capsys.readouterr().out
    assert f"download val.tar into {world.root}/mimg, then sort it into {world.root / 'mimg' / 'val'}" in out
    assert F.verify("manual_val", world.root).state == "missing"
    (world.root / "mimg").mkdir(parents=True)
    (world.root / "mimg" / "val.tar").write_bytes(world.val[:-1] + bytes([world.val[-1] ^ 0xFF]))  # always differs
    status = F.verify("manual_val", world.root)
    assert status.state == "corrupt" and _md5(world.val) in status.message
    with pytest.raises(F.ChecksumMismatch):
        F.fetch("manual_val", world.root, progress=False)
    (world.root / "mimg" / "val.tar").write_bytes(world.val)
    assert F.verify("manual_val", world.root).state == "incomplete"
    (world.root / "mimg" / "val" / "n01").mkdir(parents=True)
    (world.root / "mimg" / "val" / "n01" / "x.JPEG").write_bytes(b"jpeg")
    status = F.verify("manual_val", world.root)  # sorted by hand: nothing records its files yet
    assert status.state == "unchecked" and "--adopt" in status.message
    assert F.main(["manual_val", "--root", str(world.root)]) == 1
    assert F.main(["manual_val", "--adopt", "--root", str(world.root)]) == 0
    assert F.verify("manual_val", world.root).state == "verified"
    (world.root / "mimg" / "val" / "n01" / "y.JPEG").write_bytes(b"jpeg")
    assert F.verify("manual_val", world.root).state == "corrupt"


def test_lists_and_names(world):
    assert F.fetchable() == ["plain", "sets", "zipped", "nosum", "badsum", "offline", "tvw", "badprefix", "zipw"]
    assert F.manual_entries() == ["manual_val"]
    assert F.verify("noise").state == "generated"
    with pytest.raises(F.ParameterError, match="nope"):
        F.fetch("nope", world.root)


def test_main_exit_codes_and_list(world, capsys):
    root = ["--root", str(world.root)]
    assert F.main(["--list", *root]) == 0
    out = capsys.readouterr().out
    for name in ("plain", "sets", "nosum", "tvw", "manual_val"):
        assert name in out
    assert "none (--allow-unverified)" in out and str(world.root / "setA") in out
    assert "zipw" in out and "not in 'all'" in out and "noise" not in out.split("\n", 1)[1].split("'all'")[0]

    assert F.main(["plain", "sets", *root, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] plain" in out and "[2/2] sets" in out and "2 of 2 in place" in out
    assert F.main(["--verify", "plain", "sets", *root]) == 0
    assert F.main(["nosum", *root, "--no-progress"]) == 1
    assert "allow_unverified" in capsys.readouterr().out
    assert F.main(["nosum", *root, "--no-progress", "--allow-unverified"]) == 0
    assert F.main(["manual_val", *root]) == 1  # not in place
    assert F.main(["nope", *root]) == 2
    assert F.main([]) == 2
    assert F.main(["--verify", "--force", "plain"]) == 2
    assert F.main(["--bogus-flag"]) == 2
    # 'all': every download entry something uses (not zipw); the unreachable and bad ones fail, the rest work
    assert F.main(["all", *root, "--no-progress", "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert "[1/8] plain" in out and "zipw" not in out and "offline (failed)" in out and "badsum (failed)" in out


def test_main_accepts_the_cli_namespace(world, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    F.add_arguments(sub.add_parser("fetch"))
    args = parser.parse_args(["fetch", "plain", "--root", str(world.root), "--no-progress"])
    assert F.main(args) == 0 and (world.root / "plain" / "blob.bin").is_file()


def test_real_manifest_entries_are_well_formed():
    """The shipped manifest: every download/manual entry has a destination, a file and a known unpack."""
    names = F.fetchable()
    assert {"cifar10", "svhn_test", "dtd", "resnet50_imagenet1k_v1"} <= set(names)
    for n in names:
        e = F.entry(n)
        assert e["urls"] and e["file"]
        F._unpack(e)  # raises on an unknown archive kind
        assert F.destination(n, "/data").is_absolute() and F.download_path(n, "/data").name == e["file"]
        if e["_section"] == "datasets":
            assert F.destination(n, "/data") == Path("/data") / e["target"]
    assert F.destination("resnet50_imagenet1k_v1").parent == F.weights_dir()
    for n in F.manual_entries():
        assert F.entry(n)["files"] and "{root}" in F.entry(n)["instructions"]


def test_manifest_checksums_agree_with_the_libraries_that_also_record_them():
    """Independent sources: torchvision's and pytorch-ood's dataset classes check the same archives."""
    import torchvision.datasets as tvd
    from pytorch_ood.dataset.img import LSUNCrop, LSUNResize, Textures

    recorded_elsewhere = {
        "cifar10": tvd.CIFAR10.tgz_md5,
        "cifar100": tvd.CIFAR100.tgz_md5,
        "svhn_test": tvd.SVHN.split_list["test"][2],
        "lsun_crop": LSUNCrop.tgz_md5,
        "lsun_resize": LSUNResize.tgz_md5,
        "dtd": Textures.tgz_md5,
    }
    for name, md5 in recorded_elsewhere.items():
        assert F.entry(name)["md5"] == md5, name


def test_a_system_copy_is_used_by_content_and_a_bad_one_is_bypassed(world, tmp_path, monkeypatch):
    """An entry that a system package also installs (Fashion-MNIST: Debian's dataset-fashion-mnist,
    which recompresses the files): read there when its decompressed content matches, nothing downloaded."""
    import gzip

    content = os.urandom(4000)
    published = gzip.compress(content, mtime=1)
    (world.server.dir / "idx.gz").write_bytes(published)
    system = tmp_path / "usr" / "idx.gz"
    system.parent.mkdir()
    system.write_bytes(gzip.compress(content, compresslevel=1, mtime=2))  # other bytes, same content
    assert _md5(system.read_bytes()) != _md5(published)
    entry = {"name": "packaged", "kind": "download", "title": "a packaged set", "urls": [f"{world.server.url}/idx.gz"],
             "file": "idx.gz", "md5": _md5(published), "sha256": None, "size": None, "unpack": "none",
             "target": "pk/idx.gz", "content_sha256": _sha(content), "system_paths": [str(system)],
             "debian_package": "dataset-test", "used_by": ["test/x"]}
    _install(monkeypatch, world.manifest, [*world.datasets, entry], world.weight_entries)
    status = F.verify("packaged", world.root)
    assert status.state == "verified" and status.paths == [system] and "dataset-test" in status.message
    assert F.fetch("packaged", world.root, progress=False) == [system]
    assert world.server.requests == [] and not (world.root / "pk").exists()
    system.write_bytes(gzip.compress(content[:-1] + bytes([content[-1] ^ 0xFF])))  # always differs
    assert F.verify("packaged", world.root).state == "corrupt"
    assert F.fetch("packaged", world.root, progress=False) == [world.root / "pk" / "idx.gz"]  # downloaded instead
    assert world.server.requests == ["/idx.gz"]


def test_a_benchmark_name_fetches_every_file_it_reads():
    entries = F._entries()
    names = F._expand(["fmnist"], entries)
    assert {"fmnist_train_images", "fmnist_train_labels", "fmnist_test_images", "fmnist_test_labels",
            "mnist_5k", "DejaVuSans", "lfw_subset", "noise"} <= set(names)
    assert "cifar10" in F._expand(["cifar10"], entries)  # the benchmark, its own archive among its entries
    with pytest.raises(F.ParameterError, match="'fmnist'"):
        F._expand(["fmnis"], entries)


def _nested_train_tar(path, classes, per_class, extra=0):
    """An archive laid out like ILSVRC2012_img_train.tar: one tar per class, JPEGs inside."""
    import io
    import tarfile

    with tarfile.open(path, "w") as outer:
        for c in range(classes):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as inner:
                for i in range(per_class + extra):
                    blob = f"{c}-{i}".encode() * 50
                    info = tarfile.TarInfo(f"n{c:08d}_{i}.JPEG")
                    info.size = len(blob)
                    inner.addfile(info, io.BytesIO(blob))
            info = tarfile.TarInfo(f"n{c:08d}.tar")
            info.size = buf.tell()
            buf.seek(0)
            outer.addfile(info, buf)


def test_imagenet_train_subset_streams_the_archive_and_keeps_only_what_is_used(tmp_path, monkeypatch):
    from ashlib.assets import data

    monkeypatch.setattr(data, "IMAGENET_NUM_CLASSES", 4)
    archive, root = tmp_path / "ILSVRC2012_img_train.tar", tmp_path / "root"
    _nested_train_tar(archive, classes=4, per_class=3, extra=5)
    status = F.imagenet_train_subset(archive, root, per_class=3)
    assert status.state == "corrupt" and "expected 1d675b47" in status.message  # not the official archive
    assert not (root / "imagenet" / "train").exists()  # nothing kept
    entries = {**F._entries()}
    entries["imagenet_train"] = {**entries["imagenet_train"], "files": []}  # no md5 to hold the fake to
    monkeypatch.setattr(F, "_entries", lambda: entries)
    monkeypatch.setattr(data, "_entries", lambda path=None: entries)
    assert F.imagenet_train_subset(archive, root, per_class=3).state == "verified"
    train = root / "imagenet" / "train"
    assert sorted(p.name for p in train.iterdir()) == [f"n{c:08d}" for c in range(4)]
    assert sorted(p.name for p in (train / "n00000002").iterdir()) == [f"n00000002_{i}.JPEG" for i in range(3)]
    assert (train / "n00000002" / "n00000002_1.JPEG").read_bytes() == b"2-1" * 50
    (train / "n00000001" / "n00000001_0.JPEG").write_bytes(b"changed")
    assert F.verify("imagenet_train", root).state == "corrupt"  # recorded, so checked like any fetch
    assert F.main(["imagenet_train", "--subset-from", str(archive), "--root", str(root)]) == 1  # not empty


def test_a_record_and_the_loaders_see_the_same_files_hidden_ones_left_out(tmp_path):
    import json

    """An archive's macOS ``._*`` forks are skipped by the loaders, so the record leaves them out too
    (before, a record holding them made every check of that folder fail)."""
    from ashlib.assets import data

    dest = tmp_path / "setH"
    (dest / "imgs").mkdir(parents=True)
    (dest / "imgs" / "a.png").write_bytes(b"A" * 30)
    (dest / "imgs" / "._a.png").write_bytes(b"fork")
    e = {"name": "setH", "target": "setH", "kind": "download", "unpack": "tar.gz"}
    record = json.loads(F._record_contents(e, dest).read_text())["files"]
    assert list(record) == ["imgs/a.png"] and list(data.files_under(dest)) == ["imgs/a.png"]
    assert data.check_target(e, tmp_path) == ("ok", None)


# ----------------------------------------------- a benchmark's name, weights held to data, messages, modes


@pytest.mark.parametrize("bench", ["cifar10", "cifar100", "imagenet"])
def test_a_benchmark_name_means_every_entry_it_reads_for_fetch_verify_and_adopt(bench, tmp_path, monkeypatch,
                                                                                capsys):
    """`fetch --verify cifar10` checked the CIFAR archive alone ("1 of 1 in place", the OOD sets and the
    weights unchecked) while `imagenet` expanded: a benchmark's name is one rule for all three."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    entries = F._entries()
    expected = [n for n, e in entries.items() if any(u.split("/")[0] == bench for u in e.get("used_by") or [])]
    assert len(expected) == 8 and any(entries[n]["_section"] == "weights" for n in expected)
    assert F._expand([bench], entries) == expected
    root = ["--root", str(tmp_path / "empty")]
    assert F.main(["--verify", bench, *root]) == 1
    out = capsys.readouterr().out
    assert all(f"] {n} " in out for n in expected) and f"0 of {len(expected)} in place" in out
    assert F.main([bench, "--adopt", *root]) == 1
    out = capsys.readouterr().out
    assert all(f"] {n} " in out for n in expected) and f"0 of {len(expected)} in place" in out
    calls = []
    statuses = F.fetch_all(bench, tmp_path / "empty", progress=False,
                           downloader=lambda url, out, p=None: calls.append(url) or 1 / 0)
    assert list(statuses) == expected and all(not s.ok for s in statuses.values())


def test_one_set_of_a_benchmark_is_named_benchmark_slash_set():
    """The entry that shares a benchmark's name is reached alone as the set it gives (used_by)."""
    entries = F._entries()
    assert F._expand(["cifar10/train"], entries) == ["cifar10"]
    assert F._expand(["cifar100/SVHN", "imagenet/resnet50"], entries) == ["svhn_test", "resnet50_imagenet1k_v1"]
    with pytest.raises(F.ParameterError, match=r"name='cifar10/nope' is not allowed.*cifar10/train"):
        F._expand(["cifar10/nope"], entries)
    for name, e in entries.items():  # the word messages give for one entry selects it alone
        assert F._expand([F.cli_name(e)], entries) == [name], name
    assert F.command(entries["cifar10"], "--force", root="/d") == f"{F.COMMAND} cifar10/train --force --root /d"


def _unpublished_weights(world, monkeypatch, **extra) -> dict:
    """Add weights 'nosumw' (no checksum published; also accepted as alt.pth) to the test manifest."""
    (world.server.dir / "nosumw.pth").write_bytes(b"unpublished weights" * 50)
    e = {"kind": "download", "title": "unpublished weights", "source": "github", "name": "nosumw",
         "urls": [f"{world.server.url}/nosumw.pth"], "file": "nosumw.pth", "sha256": None, "size": None,
         "local_names": ["alt.pth"], "used_by": ["test/w"], **extra}
    _install(monkeypatch, world.manifest, world.datasets, [*world.weight_entries, e])
    return e


def test_weights_without_a_checksum_are_never_downloaded_by_a_load(world, monkeypatch):
    """pretrained_model (weights_path) downloaded the unverified DICE file on its own; fetch refused it."""
    _unpublished_weights(world, monkeypatch)
    with pytest.raises(F.WeightsNotFoundError) as err:
        F.weights_path("nosumw", "densenet100", progress=False)
    msg = str(err.value)
    assert world.server.requests == [] and not (F.weights_dir() / "nosumw.pth").exists()
    assert f"{F.COMMAND} nosumw --allow-unverified" in msg
    assert "-p checkpoint" in msg and "checkpoint=" in msg
    F.fetch("nosumw", progress=False, allow_unverified=True)  # the user's explicit opt-in
    assert F.weights_path("nosumw", progress=False) == F.weights_dir() / "nosumw.pth"
    assert world.server.requests == ["/nosumw.pth"]


@pytest.mark.parametrize("where", ["nosumw.pth", "alt.pth"])
def test_a_hand_placed_weights_file_with_nothing_to_check_it_against_is_refused(world, monkeypatch, capsys, where):
    """It loaded with no check and no warning, and --verify called it 'unverified' yet exited 0."""
    _unpublished_weights(world, monkeypatch)
    placed = F.weights_dir() / where
    placed.write_bytes(b"weights from somewhere")
    with pytest.raises(data.ChecksumError, match="cannot be checked") as err:
        F.weights_path("nosumw", progress=False)
    assert f"{F.COMMAND} nosumw --allow-unverified" in str(err.value) and f"-p checkpoint {placed}" in str(err.value)
    assert F.weights_path("nosumw", checkpoint=placed) == placed  # the user vouching for the file
    status = F.verify("nosumw")
    assert status.state == "unchecked" and not status.ok and "--allow-unverified" in status.message
    assert F.main(["--verify", "nosumw"]) == 1
    assert "not in place: nosumw (unchecked)" in capsys.readouterr().out
    assert F.main(["nosumw", "--no-progress"]) == 1  # fetch does not bless it either
    assert "--allow-unverified" in capsys.readouterr().out
    assert F.main(["nosumw", "--adopt"]) == 1
    out = capsys.readouterr().out
    assert "--allow-unverified" in out and "published checksum instead" not in out
    assert F.main(["nosumw", "--allow-unverified", "--no-progress"]) == 0  # the file already there, recorded
    assert world.server.requests == [] and F.recorded_sha256(placed) == _sha(b"weights from somewhere")
    assert F.weights_path("nosumw", progress=False) == placed and F.verify("nosumw").state == "verified"
    placed.write_bytes(b"changed")
    with pytest.raises(data.ChecksumError, match="does not match"):
        F.weights_path("nosumw", progress=False)
    assert F.main(["--verify", "nosumw"]) == 1


def test_an_alternative_weights_file_is_not_held_to_the_published_checksum_of_another(world, monkeypatch):
    """ASH's densenet100_cifar10.pth is another file than DICE's: the DICE sha256 does not apply to it,
    the record beside it does."""
    _unpublished_weights(world, monkeypatch, sha256=_sha(b"unpublished weights" * 50))
    alt = F.weights_dir() / "alt.pth"
    alt.write_bytes(b"ASH's copy")
    with pytest.raises(data.ChecksumError, match="cannot be checked"):
        F.weights_path("nosumw", download=False)
    assert F.verify("nosumw").state == "unchecked"
    F.record_sha256(alt, _sha(b"ASH's copy"), F.entry("nosumw"), "a test")
    assert F.weights_path("nosumw", download=False) == alt and F.verify("nosumw").state == "verified"


def test_the_weights_a_benchmark_uses_have_a_published_checksum():
    """The DICE DenseNet checkpoints, pinned from the DICE repository (commit 8acfb8d; git blob = file)."""
    for name in F.fetchable():
        e = F.entry(name)
        if e["_section"] == "weights" and e.get("used_by"):
            assert e.get("sha256") or e.get("sha256_prefix"), name
    dice = F.entry("densenet100_cifar10_dice")
    assert dice["sha256"] == "deaefd082911a1c6c92aacdcfecf03c71b932acc5c08b779c85c44eccdc0c817"
    assert dice["size"] == 3381795
    assert any("8acfb8d52eee997a7bf6f9d17ff5363fd91ba47b" in u for u in dice["urls"])


def test_adopt_checks_before_it_trusts_and_never_rewrites_a_record_that_fails(world, monkeypatch, capsys):
    """`fetch cifar10 --adopt` on files that differ from the published md5s printed "trusting ... as it
    is" before "corrupt"; a folder with a record that its files fail was silently recorded anew."""
    world.datasets[1]["contents_md5"] = {"a.png": "0" * 32}
    _install(monkeypatch, world.manifest, world.datasets, world.weight_entries)
    (world.root / "setA").mkdir(parents=True)
    (world.root / "setA" / "a.png").write_bytes(b"not the published file")
    status = F.adopt("sets", world.root)
    out = capsys.readouterr().out
    assert status.state == "corrupt" and "trust" not in out + status.message
    assert not data.contents_record(world.root / "setA").exists()
    assert "published" in status.message

    del world.datasets[1]["contents_md5"]
    _install(monkeypatch, world.manifest, world.datasets, world.weight_entries)
    shutil.rmtree(world.root / "setA")
    F.fetch("sets", world.root, progress=False)
    record = data.contents_record(world.root / "setA")
    before = record.read_text()
    (world.root / "setA" / "a.png").write_bytes(b"edited after fetch")
    status = F.adopt("sets", world.root)
    assert status.state == "corrupt" and record.read_text() == before and str(record) in status.message
    record.unlink()
    status = F.adopt("sets", world.root)  # nothing records it: now the user's copy is recorded, after the check
    assert status.state == "verified" and "recorded" in status.message and "trust on first use" in status.message


def test_the_missing_data_error_names_the_fetch_and_adopt_commands(tmp_path):
    """It gave URLs and "unpack it into ..." only, so a folder unpacked by hand failed again as unchecked."""
    root = tmp_path / "empty"
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_benchmark("cifar10", root=root)
    msg = str(err.value)
    assert f"python -m ashlib fetch cifar10 --root {root}" in msg  # everything at once
    assert f"python -m ashlib fetch lsun_crop --root {root}" in msg
    assert f"python -m ashlib fetch lsun_crop --adopt --root {root}" in msg
    assert f"python -m ashlib fetch isun --allow-unverified --root {root}" in msg
    assert f"python -m ashlib fetch cifar10/train --root {root}" in msg  # the CIFAR archive alone
    assert f"python -m ashlib fetch svhn_test --root {root}" in msg


def test_downloads_get_the_usual_permissions(world):
    """pooch's temporary files are 0600, and moving one kept that: a shared data root was unreadable."""
    old = os.umask(0o022)
    try:
        paths = [*F.fetch("plain", world.root, progress=False), *F.fetch("sets", world.root, progress=False),
                 *F.fetch("tvw", progress=False), *F.fetch("zipw", progress=False, allow_unverified=True),
                 *F.fetch("nosum", world.root, progress=False, allow_unverified=True)]
        files = [p for p in paths if p.is_file()] + [world.root / "free.tar.gz.sha256"]
        assert len(files) >= 6
        assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}
        os.umask(0o002)
        path = F.fetch("plain", world.root, force=True, progress=False)[0]
        assert oct(path.stat().st_mode & 0o777) == "0o664"
    finally:
        os.umask(old)
