"""The guard around a submission while it is graded: an IPython startup file (the grader copies this
file into the kernel's profile, so it runs in the kernel before any cell), never imported by ashlib.

It reads its settings from ``$ASHBOOK_SANDBOX`` (JSON: ``deny``, ``write``, ``log``, ``forbidden``),
removes the variable, and installs an audit hook (PEP 578, which cannot be removed once added) that

* refuses to open or list anything under a ``deny`` folder (the course folder with the instructor's
  notebook and hidden tests, the gradebook, the other students' submissions) unless it lies in a
  ``write`` folder (the kernel's own working folder, its scratch folder, ashlib's cache), to write
  anywhere outside the ``write`` folders, to read another process's ``/proc`` entries from the
  student's own code, and to start programs;
* notes, without refusing, what the student's own code looks at that a grader would want to know:
  a notebook it opens, a folder it lists, the environment it reads;
* replaces every ``forbidden`` function (``"ashlib.methods.shaping.ash_p"``: what the assignment asks the
  student to write) by a tripwire that calls the original and records which library function the
  student's code called to reach it.

"The student's code" is the first caller outside the standard library that is not a library either
(not under ``sys.prefix``, ashlib's folder or this file): a cell, or a function a cell defined.

Each refusal, note and tripwire call appends one JSON line to the ``log`` file (through a descriptor
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
    own_pid = str(_os.getpid())

    import sysconfig
    stdlib = {_os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")}
    libraries = {_os.path.realpath(p) for p in (_sys.prefix, _sys.base_prefix, _sys.exec_prefix)}
    import ashlib  # the package itself, wherever it is installed (an editable install is outside sys.prefix)
    libraries |= {_os.path.dirname(_os.path.realpath(ashlib.__file__)), _os.path.realpath(__file__)}
    libraries |= set(stdlib)
    site = {_os.path.realpath(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}

    running = {"cell": None}  # the SHA-1 of the source of the cell running now
    shell = _sys.modules["IPython"].get_ipython() if "IPython" in _sys.modules else None
    if shell is not None:
        shell.events.register("pre_run_cell", lambda info: running.update(
            cell=_hashlib.sha1((info.raw_cell or "").encode()).hexdigest()))

    noted = set()  # a note once per cell: dict(os.environ) reads every variable

    def record(kind: str, detail: str) -> None:
        if kind == "looked":
            if (detail, running["cell"]) in noted:
                return
            noted.add((detail, running["cell"]))
        line = _json.dumps({"kind": kind, "detail": detail, "cell": running["cell"]}) + "\n"
        _os.write(log_fd, line.encode())

    def under(path: str, folders) -> bool:
        return any(path == f or path.startswith(f + _os.sep) for f in folders)

    def in_stdlib(filename: str) -> bool:
        return filename.startswith("<frozen") or (under(filename, stdlib) and not under(filename, site))

    def in_library(filename: str) -> bool:
        return filename.startswith("<frozen") or under(filename, libraries)

    def callers(frame):
        """``frame`` and the frames that called it, innermost first."""
        while frame is not None:
            yield frame
            frame = frame.f_back

    def students_act(frame) -> bool:
        """Whether the first caller outside the standard library, from ``frame`` up, is the student's
        code (not the import system, not a library)."""
        for frame in callers(frame):
            name = frame.f_code.co_filename
            if name.startswith("<frozen importlib"):
                return False
            if frame.f_code.co_name == "_modified_open" and "IPython" in name:
                continue  # IPython's open() in a cell
            if not in_stdlib(name):
                return not in_library(name)
        return False

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

    def off_limits(path: str, frame) -> bool:
        """Under a denied folder (and not an allowed one), or another process's ``/proc`` entry (its
        memory, environment, files) read by the student's own code (libraries read ``/proc/1``)."""
        if under(path, deny) and not under(path, write):
            return True
        parts = path.split(_os.sep)
        return (len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != own_pid
                and students_act(frame))

    def hook(event: str, args) -> None:
        if event == "open":
            path = resolve(args[0])
            if path is None:
                return
            if off_limits(path, _sys._getframe(1)):
                refuse("read", path, f"{path} is off limits while grading (hidden tests, the gradebook, "
                       "other students' work, other processes)")
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            if flags & writing and not under(path, write):
                refuse("write", path, f"writing {path} is not allowed: a submission writes only in its own folder")
            if path.endswith(".ipynb") and students_act(_sys._getframe(1)):
                record("looked", f"opened {path}")
        elif event in ("os.listdir", "os.scandir"):
            path = resolve(args[0] if args and args[0] is not None else ".")
            if path is None:
                return
            if off_limits(path, _sys._getframe(1)):
                refuse("list", path, f"listing {path} is not allowed while grading")
            if students_act(_sys._getframe(1)):
                record("looked", f"listed {path}")
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

    class WatchedEnviron(type(_os.environ)):
        """``os.environ``, noting when the student's own code reads it (the kernel's environment holds
        only what the assignment needs: nothing of the grader's)."""

        def _note(self):
            if students_act(_sys._getframe(2)):
                record("looked", "read the environment (os.environ)")

        def __getitem__(self, key):
            self._note()
            return super().__getitem__(key)

        def __iter__(self):
            self._note()
            return super().__iter__()

        def __repr__(self):
            self._note()
            return super().__repr__()

        def copy(self):
            self._note()
            return super().copy()

    _os.environ.__class__ = WatchedEnviron

    inside = {"depth": 0}  # a forbidden function's own calls of another are not the student's

    def entry_point(frame, forbidden_name: str) -> str:
        """The library function the student's code called to reach ``forbidden_name``: itself, or
        'ashlib.x.f, which runs <forbidden_name>'."""
        entry = None
        for frame in callers(frame):
            name = frame.f_code.co_filename
            if not in_library(name):
                break
            if not in_stdlib(name):
                entry = f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"
        if entry is None or entry == forbidden_name:
            return forbidden_name
        return f"{entry}, which runs {forbidden_name}"

    for name in settings["forbidden"]:
        module_name, _, attribute = name.rpartition(".")
        module = __import__(module_name, fromlist=[attribute])
        original = getattr(module, attribute)

        def tripwire(*args, __original=original, __name=name, **kwargs):
            if not inside["depth"]:
                record("forbidden", entry_point(_sys._getframe(1), __name))
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
