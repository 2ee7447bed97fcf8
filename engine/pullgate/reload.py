"""Follow a policy directory live: filesystem events are hints, content decides.

How a change is applied (each point is a trap seen with ConfigMap volumes and editors):
- watch the directory without name filters (a ConfigMap update renames a symlink called
  ``..data``; no event names ``policy.yaml``) and its parent (a directory that is deleted,
  recreated or swapped in by rename produces no events of its own); ignore open/close events,
  and events inside dot-named directories (the loader never reads them; a ConfigMap writes
  and deletes a whole ``..<timestamp>`` directory around the one ``..data`` rename that
  matters, which would otherwise keep the debounce waiting);
- debounce: wait for ``debounce`` of quiet, at most ``max_wait`` after the first hint;
- rescan: hash every file's bytes (and the files policies refer to); if the hash equals the
  applied revision, nothing changed;
- compile the whole set aside, then swap one reference: requests see the old set or the new
  one, never a mix;
- on any error keep the last good set, and report the error (log with FILE:LINE:COL, status);
- rescan every ``interval`` anyway, and re-watch a directory that came back;
- with a :class:`~pullgate.snapshot.PolicySnapshot`, save each applied revision, and serve the
  saved one when the directory does not load at start (until the directory loads again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from .cel import DEFAULT_ENGINE, ProgramCache
from .limits import DEFAULT_LIMITS, Limits
from .logs import event
from .policy import Issue, ParseCache, PolicyLoadError, fingerprint
from .rules import CompiledPolicySet, load_policies
from .snapshot import PolicySnapshot, SnapshotError

if TYPE_CHECKING:
    from .config import Config

__all__ = ["LoadFailure", "PolicyState", "Reloader"]

log = logging.getLogger("pullgate.reload")
_IGNORED = frozenset({"opened", "closed_no_write"})


@dataclass(frozen=True, slots=True)
class LoadFailure:
    at: float  # time.time()
    issues: tuple[Issue, ...]


@dataclass(slots=True)
class PolicyState:
    """What the server reads: the applied set (None until one loads) and the last failure.

    Attributes are replaced, never mutated, so readers need no lock.
    """

    current: CompiledPolicySet | None = None
    loaded_at: float = 0.0
    failure: LoadFailure | None = None
    listeners: list[Callable[[PolicyState], None]] = field(default_factory=list)

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener(self)


class _Hints(FileSystemEventHandler):
    def __init__(
        self, poke: Callable[[], None], only: str | None = None, root: str | None = None
    ) -> None:
        self.poke = poke
        self.only = only  # for the parent watch: events about the root itself
        self.root = root  # for the root's watch: what dot-named paths are relative to

    def on_any_event(self, ev: FileSystemEvent) -> None:
        if ev.event_type in _IGNORED:
            return
        paths = {os.fsdecode(ev.src_path), os.fsdecode(getattr(ev, "dest_path", "") or "")}
        paths.discard("")
        if self.only is not None and self.only not in paths:
            return
        if self.root is not None and not any(_visible(p, self.root) for p in paths):
            return
        self.poke()


def _visible(path: str, root: str) -> bool:
    """Whether a change at ``path`` can change what loads: anything but what lies in or is a
    dot-named entry, except ``..data`` itself (the ConfigMap symlink that is swapped)."""
    rel = os.path.relpath(path, root)
    if rel == "." or rel == "..data":
        return True
    return not any(part.startswith(".") for part in rel.split(os.sep))


class Reloader:
    """Loads ``root`` into ``state`` and keeps it current until :meth:`stop`."""

    def __init__(
        self,
        root: str,
        state: PolicyState,
        *,
        debounce: float = 0.1,
        max_wait: float = 2.0,
        interval: float = 30.0,
        polling: bool = False,
        cache: ProgramCache | None = None,
        engine: str = DEFAULT_ENGINE,
        limits: Limits = DEFAULT_LIMITS,
        snapshot: PolicySnapshot | None = None,
        role: str = "",
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        self.root = os.path.abspath(root)
        self.display = root
        self.state = state
        self.debounce = debounce
        self.max_wait = max_wait
        self.interval = interval
        self.polling = polling
        self.cache = cache or ProgramCache()
        self.parse_cache = ParseCache()
        self.engine = engine
        self.limits = limits
        self.snapshot = snapshot
        # told True for each revision applied, False for each distinct rejection (metrics)
        self.on_result = on_result
        # role "shadow" (shadow.py): events are named shadow_<event>, on pullgate.shadow
        self._log = logging.getLogger(f"pullgate.{role}") if role else log
        self._prefix = f"{role}_" if role else ""
        self._restored = False  # serving the snapshot: the next good load replaces it
        self._hint = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None
        self._watch: ObservedWatch | None = None
        self._watched_inode: tuple[int, int] | None = None
        self._last_failure_issues: tuple[Issue, ...] = ()
        self._lock = threading.Lock()  # one rescan at a time

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def configured(cls, config: Config, root: str, state: PolicyState, **extra: Any) -> Reloader:
        """A reloader for ``root`` with the daemon config's reload, CEL and limits settings;
        ``extra`` adds the rest (snapshot, role, on_result)."""
        return cls(
            root,
            state,
            debounce=config.reload.debounce,
            interval=config.reload.interval,
            polling=config.reload.poll,
            engine=config.cel.engine,
            limits=config.limits,
            **extra,
        )

    def start(self) -> None:
        """Load once now (the caller learns the outcome from ``state``), then follow changes."""
        self._observer = self._make_observer()
        self.rescan()
        if self.state.current is None and self.snapshot is not None:
            self._restore(self.snapshot)
        self._thread = threading.Thread(target=self._run, name="pullgate-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._hint.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def _event(self, level: int, name: str, **fields: Any) -> None:
        event(self._log, level, self._prefix + name, **fields)

    def poke(self) -> None:
        """A hint that something may have changed."""
        self._hint.set()

    def _make_observer(self) -> BaseObserver:
        observer: BaseObserver = PollingObserver(timeout=0.25) if self.polling else Observer()
        parent = os.path.dirname(self.root)
        try:
            observer.schedule(_Hints(self.poke, only=self.root), parent, recursive=False)
            observer.start()
        except OSError as exc:  # inotify limits, filesystems without inotify
            if self.polling:
                raise
            self._event(logging.WARNING, "watch_fallback", reason=str(exc), using="polling")
            self.polling = True
            return self._make_observer()
        return observer

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            hinted = self._hint.wait(self.interval)
            if self._stop.is_set():
                return
            if hinted:
                first = time.monotonic()
                while True:
                    self._hint.clear()
                    remaining = self.max_wait - (time.monotonic() - first)
                    if remaining <= 0 or not self._hint.wait(min(self.debounce, remaining)):
                        break
                    if self._stop.is_set():
                        return
            try:
                self.rescan()
            except Exception:  # never let the reloader die: the next hint retries
                self._log.exception("rescan failed")

    def _ensure_watch(self) -> None:
        """Watch the root recursively; re-watch when it was recreated or swapped."""
        observer = self._observer
        if observer is None:
            return
        try:
            st = os.stat(self.root)
            inode: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            inode = None
        if inode == self._watched_inode and self._watch is not None:
            return
        if self._watch is not None:
            with contextlib.suppress(KeyError, OSError):
                observer.unschedule(self._watch)
            self._watch = None
        self._watched_inode = None
        if inode is None:
            return
        try:
            hints = _Hints(self.poke, root=self.root)
            self._watch = observer.schedule(hints, self.root, recursive=True)
            self._watched_inode = inode
        except OSError as exc:
            self._event(logging.WARNING, "watch_failed", directory=self.display, reason=str(exc))

    def rescan(self) -> bool:
        """Apply the directory's content if it changed and loads. True when a new set applied."""
        with self._lock:
            self._ensure_watch()
            current = self.state.current
            refs = current.references if current is not None else ()
            seen = fingerprint(self.root, refs, display=self.display)
            if current is not None and seen == current.revision and not self._restored:
                self._clear_failure()
                return False
            started = time.perf_counter()
            try:
                new = load_policies(
                    self.root,
                    display=self.display,
                    cache=self.cache,
                    engine=self.engine,
                    parse_cache=self.parse_cache,
                    limits=self.limits,
                )
            except PolicyLoadError as exc:
                self._fail(exc)
                return False
            if current is not None and new.revision == current.revision and not self._restored:
                self._clear_failure()
                return False
            self._restored = False
            self.state.current = new
            self.state.loaded_at = time.time()
            self.state.failure = None
            self._last_failure_issues = ()
            self._event(
                logging.INFO,
                "policies_applied",
                revision=new.revision,
                previous=current.revision if current is not None else "",
                policies=len(new.policies),
                seconds=round(time.perf_counter() - started, 3),
            )
            self.state._changed()
            if self.on_result is not None:
                self.on_result(True)
            self._save(new)
            return True

    def _save(self, policies: CompiledPolicySet) -> None:
        if self.snapshot is None:
            return
        try:
            self.snapshot.save(policies, root=self.root, display=self.display)
        except OSError as exc:  # serving goes on; only a restart without policies would suffer
            self._event(
                logging.WARNING,
                "snapshot_failed",
                revision=policies.revision,
                directory=str(self.snapshot.state_dir),
                reason=f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
            )

    def _restore(self, snapshot: PolicySnapshot) -> None:
        """The directory did not load at start: serve the last applied revision, loudly."""
        failure = self.state.failure
        errors = [str(i) for i in failure.issues] if failure is not None else []
        try:
            restored = snapshot.restore(
                root=self.root,
                display=self.display,
                engine=self.engine,
                cache=self.cache,
                limits=self.limits,
            )
        except SnapshotError as exc:
            self._event(logging.WARNING, "snapshot_unusable", reason=str(exc), errors=errors)
            return
        self._restored = True
        self.state.current = restored.policies
        self.state.loaded_at = restored.applied_at
        self._event(
            logging.ERROR,
            "serving_snapshot",
            revision=restored.policies.revision,
            saved_revision=restored.revision,
            directory=restored.directory,
            policy_dir=self.display,
            errors=errors,
            action="fix the policy directory; the daemon switches to it once it loads",
        )
        self.state._changed()

    def _clear_failure(self) -> None:
        if self.state.failure is not None:
            self.state.failure = None
            self._last_failure_issues = ()
            self.state._changed()

    def _fail(self, exc: PolicyLoadError) -> None:
        current = self.state.current
        self.state.failure = LoadFailure(at=time.time(), issues=exc.issues)
        if exc.issues != self._last_failure_issues:  # report each distinct failure once
            self._last_failure_issues = exc.issues
            self._event(
                logging.ERROR,
                "policies_rejected",
                keeping=current.revision if current is not None else "",
                errors=[str(i) for i in exc.issues],
            )
            if self.on_result is not None:
                self.on_result(False)
        self.state._changed()
