"""The guard around a submission while it is graded: an IPython startup file (the grader copies this
file into the kernel's profile, so it runs in the kernel before any cell), never imported by ashlib.

It reads its settings from ``$ASHBOOK_SANDBOX`` (JSON: ``deny``, ``write``, ``log``, ``forbidden``),
removes the variable, and installs an audit hook (PEP 578, which cannot be removed once added) that

* refuses to open anything under a ``deny`` folder (the instructor's notebooks and hidden tests, the
  gradebook, the other students' submissions) unless it lies in a ``write`` folder (the submission's
  own folder, its scratch folder, ashlib's cache), to write anywhere outside the ``write`` folders,
  and to start programs;
* replaces every ``forbidden`` function (``"ashlib.shaping.ash_p"``: what the assignment asks the
  student to write) by a tripwire that calls the original.

Each refusal and each tripwire call appends one JSON line to the ``log`` file (through a descriptor
opened before the hook, so the hook does not police itself), with the SHA-1 of the source of the cell
that ran; the grader turns them into reasons and flags. This guards against mistakes and casual
cheating, not against a determined attacker (code can reach the file system through C extensions):
for a hostile class, run the grader in a container, as nbgrader's documentation advises.
"""
import hashlib as _hashlib
import json as _json
import os as _os
import sys as _sys


def _install() -> None:
    settings = _json.loads(_os.environ.pop("ASHBOOK_SANDBOX"))
    deny = [_os.path.realpath(p) for p in settings["deny"]]
    write = [_os.path.realpath(p) for p in settings["write"]] + ["/dev/null"]
    log_fd = _os.open(settings["log"], _os.O_WRONLY | _os.O_APPEND | _os.O_CREAT, 0o600)
    writing = _os.O_WRONLY | _os.O_RDWR | _os.O_APPEND | _os.O_CREAT | _os.O_TRUNC

    running = {"cell": None}  # the SHA-1 of the source of the cell running now
    shell = _sys.modules["IPython"].get_ipython() if "IPython" in _sys.modules else None
    if shell is not None:
        shell.events.register("pre_run_cell", lambda info: running.update(
            cell=_hashlib.sha1((info.raw_cell or "").encode()).hexdigest()))

    def cell() -> int | None:
        return running["cell"]

    def record(kind: str, detail: str) -> None:
        line = _json.dumps({"kind": kind, "detail": detail, "cell": cell()}) + "\n"
        _os.write(log_fd, line.encode())

    def under(path: str, folders) -> bool:
        return any(path == f or path.startswith(f + _os.sep) for f in folders)

    def resolve(path) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        try:
            return _os.path.realpath(_os.fsdecode(path))
        except (TypeError, ValueError):
            return None

    def refuse(kind: str, detail: str, message: str):
        record(kind, detail)
        raise PermissionError(f"ashbook grader: {message}")

    def hook(event: str, args) -> None:
        if event == "open":
            path = resolve(args[0])
            if path is None:
                return
            if under(path, deny) and not under(path, write):
                refuse("read", path, f"{path} is off limits while grading (hidden tests, the gradebook, "
                       "other students' work)")
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            if flags & writing and not under(path, write):
                refuse("write", path, f"writing {path} is not allowed: a submission writes only in its own folder")
        elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.replace", "os.truncate",
                       "shutil.rmtree", "os.symlink", "os.link", "os.chmod"):
            for arg in args[:2]:
                path = resolve(arg) if isinstance(arg, (str, bytes, _os.PathLike)) else None
                if path is not None and not under(path, write):
                    refuse("write", path, f"changing {path} is not allowed: a submission writes only in its "
                           "own folder")
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn"):
            refuse("program", str(args[0])[:200], "starting programs is not allowed while grading")

    # libraries that start programs while they load (torch asks ldconfig and gcc where its CUDA
    # libraries are) are loaded before the guard, as a student's import would otherwise be refused
    for preload in ("numpy", "torch"):
        try:
            __import__(preload)
        except ImportError:
            pass

    inside = {"depth": 0}  # a forbidden function's own calls of another are not the student's

    for name in settings["forbidden"]:
        module_name, _, attribute = name.rpartition(".")
        module = __import__(module_name, fromlist=[attribute])
        original = getattr(module, attribute)

        def tripwire(*args, __original=original, __name=name, **kwargs):
            if not inside["depth"]:
                record("forbidden", __name)
            inside["depth"] += 1
            try:
                return __original(*args, **kwargs)
            finally:
                inside["depth"] -= 1

        tripwire.__name__, tripwire.__doc__ = original.__name__, original.__doc__
        setattr(module, attribute, tripwire)
    _sys.addaudithook(hook)


if "ASHBOOK_SANDBOX" in _os.environ:
    _install()
del _install
