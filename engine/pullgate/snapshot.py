"""The last applied policy revision, saved on disk so a restarted daemon can serve it when
the policy directory is broken or missing at start.

Layout under ``stateDir`` (default ``/var/lib/pullgate``)::

    snapshot -> snapshot-<revision>-<ns>      a symlink, swapped by rename (atomic)
    snapshot-<revision>-<ns>/meta.json        revision, policy directory, when it applied
    snapshot-<revision>-<ns>/policies/...     every policy file, laid out as in the directory,
                                              and every file read through a relative ``path:``

Each copy is written in full and fsynced before the symlink is swapped, so a crash at any
point leaves the previous snapshot or the new one, never a mix. The bytes saved are checked
against the applied revision (a file that changed between loading and saving is caught; the
next revision applied is saved instead). Files a policy reads through an absolute ``path:``
(a mounted Secret, say) are not copied: a restored snapshot reads them where they are.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .cel import DEFAULT_ENGINE, ProgramCache
from .limits import DEFAULT_LIMITS, Limits
from .logs import event
from .policy import Issue, PolicyLoadError
from .policy.loader import _revision, _scan  # the loader's own walk and hash: same files
from .rules import CompiledPolicySet, load_policies

__all__ = ["PolicySnapshot", "Restored", "SnapshotError"]

log = logging.getLogger("pullgate.snapshot")
LINK = "snapshot"
META = "meta.json"
FILES = "policies"
FORMAT = 1


class SnapshotError(Exception):
    """No usable snapshot; the message says why."""


@dataclass(frozen=True, slots=True)
class Restored:
    policies: CompiledPolicySet
    revision: str  # as saved; equals policies.revision unless an absolute path: file changed
    applied_at: float  # time.time() when the saved revision was applied
    directory: str  # where the copy lies


def _fsync(path: str | Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _syncfs(path: Path) -> bool:
    """Flush the filesystem holding ``path`` (Linux ``syncfs``): one call makes every file just
    written durable, where an fsync per file costs a disk flush each (10,000 policy files took
    16 s more to start with). False where syncfs is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
    return True


def _make_durable(target: Path, files: list[Path]) -> None:
    """Every file and directory below ``target`` on disk before the symlink points at it."""
    if _syncfs(target):
        return
    for path in files:
        _fsync(path)
    for directory in sorted({p for f in files for p in f.parents if target in p.parents}):
        _fsync(directory, directory=True)
    _fsync(target, directory=True)


class PolicySnapshot:
    """Saves applied revisions of one policy directory to ``state_dir`` and restores them."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = Path(state_dir)
        self.saved_revision = ""  # the revision on disk, once known (saves skip it)

    @property
    def link(self) -> Path:
        return self.state_dir / LINK

    def _meta(self) -> dict[str, object]:
        try:
            meta = json.loads((self.link / META).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SnapshotError(f"no snapshot in {self.state_dir}") from None
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"cannot read {self.link / META}: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise SnapshotError(f"{self.link / META} is not a pullgate snapshot (format {FORMAT})")
        return meta

    # -- saving ------------------------------------------------------------------------------

    def save(self, policies: CompiledPolicySet, *, root: str, display: str) -> bool:
        """Save the revision ``policies`` that was just loaded from ``root``. True when saved;
        False when it was already saved or its files changed meanwhile (logged)."""
        if policies.revision == self.saved_revision:
            return False
        root = os.path.abspath(root)
        issues: list[Issue] = []
        files = _scan(Path(root), "", issues)  # (path relative to root, resolved path)
        if issues:
            return self._skip(policies.revision, f"the directory changed: {issues[0]}")
        copies: dict[str, bytes] = {}
        contents: list[tuple[str, bytes]] = []
        try:
            for rel, real in files:
                data = real.read_bytes()
                copies[rel] = data
                shown = rel if display in ("", ".") else f"{display.rstrip('/')}/{rel}"
                contents.append((shown, data))  # named as the loader names them
            refs = {name: Path(name).read_bytes() for name in policies.references}
        except OSError as exc:
            return self._skip(policies.revision, f"cannot read {exc.filename}: {exc.strerror}")
        if _revision(contents, refs, display) != policies.revision:
            return self._skip(policies.revision, "the policy files changed while being saved")
        external = []
        for name, data in refs.items():
            inside = root + os.sep
            if name.startswith(inside) and os.path.normpath(name).startswith(inside):
                copies[name[len(root) + 1 :]] = data  # as the policy wrote it, '..' and all
            else:
                external.append(name)
        self.state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        stamp = f"{LINK}-{policies.revision}-{time.time_ns()}"
        target = self.state_dir / stamp
        try:
            target.mkdir(mode=0o750)
            for rel, data in copies.items():
                _write(target / FILES / rel, data)
            meta = {
                "format": FORMAT,
                "revision": policies.revision,
                "root": root,
                "display": display,
                "appliedAt": time.time(),
                "external": sorted(external),
            }
            _write(target / META, json.dumps(meta, indent=2).encode())
            _make_durable(target, [target / META, *(target / FILES / rel for rel in copies)])
            tmp = self.state_dir / f".{LINK}-tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(stamp)
            os.replace(tmp, self.link)
            _fsync(self.state_dir, directory=True)
        except OSError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        for entry in self.state_dir.iterdir():  # the previous copy, and any a crash left
            if entry.name.startswith(f"{LINK}-") and entry.name != stamp and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
        self.saved_revision = policies.revision
        event(
            log,
            logging.INFO,
            "snapshot_saved",
            revision=policies.revision,
            directory=str(target),
            files=len(copies),
        )
        return True

    def _skip(self, revision: str, why: str) -> bool:
        event(log, logging.WARNING, "snapshot_skipped", revision=revision, reason=why)
        return False

    # -- restoring ---------------------------------------------------------------------------

    def restore(
        self,
        *,
        root: str,
        display: str,
        engine: str = DEFAULT_ENGINE,
        cache: ProgramCache | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Restored:
        """Load the saved revision of ``root``; SnapshotError says why there is none."""
        meta = self._meta()
        saved_root = meta.get("root")
        if saved_root != os.path.abspath(root):
            raise SnapshotError(
                f"the snapshot in {self.state_dir} is of {saved_root}, not {os.path.abspath(root)}"
            )
        revision = str(meta.get("revision", ""))
        directory = os.path.realpath(self.link)
        try:
            policies = load_policies(
                os.path.join(directory, FILES),
                display=str(meta.get("display", display)),
                engine=engine,
                cache=cache,
                limits=limits,
            )
        except PolicyLoadError as exc:
            raise SnapshotError(
                f"the snapshot of revision {revision} does not load: {exc.issues[0]}"
            ) from None
        self.saved_revision = revision
        applied = meta.get("appliedAt")
        return Restored(
            policies=policies,
            revision=revision,
            applied_at=float(applied) if isinstance(applied, int | float) else 0.0,
            directory=directory,
        )
