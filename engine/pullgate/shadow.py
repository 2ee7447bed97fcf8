"""Shadow policies: a candidate policy set judged beside the live one, never deciding.

``pullgate serve --shadow-policies DIR`` (``shadowPolicies:`` in the config) follows DIR like
the live policy directory (hot reload, every error with FILE:LINE:COL) and judges every
request the live set judged again with the candidate set. Where the two verdicts differ it
logs one ``shadow_difference`` line and counts it (``pullgate status``, and the metrics when
``pullgate.metrics`` is there):

- ``would_deny``: the live set allowed the image, the shadow set denies it;
- ``would_allow``: the live set denied it, the shadow set allows it.

What the shadow can never do to a live judgement:

- change it: the live judgement is computed and answered as before; the shadow only reads it;
- raise into it: :meth:`Shadow.offer` catches everything;
- delay it: :meth:`Shadow.offer` puts the request on a bounded queue without waiting; when
  the queue is full the request is not shadowed, and counted as ``dropped``;
- take its resources: ``WORKERS`` threads of the shadow's own judge it, outside the live
  verification slots (``limits.concurrentVerifications``), so shadow registry work never
  makes a live request wait or be refused.

The shadow's :class:`~pullgate.decide.Decider` shares the live verifiers and their evidence
cache, so it mostly reuses the evidence the live judgement has just verified; it has its own
judgement cache, and writes no ``decision`` lines. A shadow directory that does not load
leaves the shadow off (``shadow_policies_rejected`` in the log, the errors in ``pullgate
status``); later it keeps the last good shadow set, like the live reloader.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import Config
from .decide import Decider
from .judgement import Judgement
from .judgements import JudgementCache
from .logs import event
from .reload import PolicyState, Reloader
from .request import Request

__all__ = ["QUEUE_SIZE", "WORKERS", "WOULD_ALLOW", "WOULD_DENY", "Shadow", "ShadowStatus"]

WOULD_DENY = "would_deny"  # the live set allowed, the shadow set denies
WOULD_ALLOW = "would_allow"  # the live set denied, the shadow set allows
WORKERS = 2  # shadow judgements at once (each may do registry work up to registry.timeout)
QUEUE_SIZE = 256  # requests waiting for the shadow; beyond, they are dropped and counted
DROP_LOG_INTERVAL = 60.0  # seconds between two shadow_dropped lines

log = logging.getLogger("pullgate.shadow")

_Item = tuple[Request, Judgement]


@dataclass(frozen=True, slots=True)
class ShadowStatus:
    """What ``pullgate status`` shows of the shadow."""

    directory: str
    revision: str  # "" while no shadow set has loaded: the shadow is off
    policies: int
    load_errors: tuple[str, ...]
    evaluations: int
    would_deny: int
    would_allow: int
    errors: int
    dropped: int


def _noop(*args: object) -> None:
    return None


def _metrics_hook(name: str) -> Callable[..., None]:
    """``pullgate.metrics.<name>`` when that module exists, else a no-op."""
    try:
        module = importlib.import_module("pullgate.metrics")
    except ModuleNotFoundError as exc:
        if exc.name != "pullgate.metrics":
            log.exception("pullgate.metrics does not import; shadow metrics are off")
        return _noop
    except Exception:
        log.exception("pullgate.metrics does not import; shadow metrics are off")
        return _noop
    hook = getattr(module, name, None)
    return hook if callable(hook) else _noop


class Shadow:
    """A candidate policy directory judged beside the live set (see the module docstring)."""

    def __init__(
        self,
        directory: str,
        live: Decider,
        config: Config,
        *,
        workers: int = WORKERS,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.directory = directory
        self.state = PolicyState()
        self.decider = Decider(
            live.verifiers,  # and so the live evidence cache
            options=live.options,
            log=None,  # shadow judgements are not decisions
            judgements=JudgementCache(
                config.cache.judgement_ttl, max_entries=config.cache.max_entries
            ),
        )
        self.reloader = Reloader.configured(
            config,
            directory,
            self.state,
            role="shadow",  # events shadow_policies_applied, shadow_policies_rejected, ...
        )
        self.workers = workers
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=queue_size)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._counts = {"evaluations": 0, WOULD_DENY: 0, WOULD_ALLOW: 0, "errors": 0, "dropped": 0}
        self._last_drop_log = 0.0
        self._stopping = threading.Event()
        self._evaluated: Callable[..., None] = _noop
        self._difference: Callable[..., None] = _noop

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the shadow directory once and follow it; start the workers. Never raises: a
        shadow that cannot start is off, and says so."""
        self._evaluated = _metrics_hook("shadow_evaluated")
        self._difference = _metrics_hook("shadow_difference")
        try:
            self.reloader.start()
        except Exception as exc:  # e.g. no inotify and polling failing too
            event(
                log,
                logging.ERROR,
                "shadow_failed",
                directory=self.directory,
                reason=f"{type(exc).__name__}: {exc}",
                action="the shadow is off; live judgements are unaffected",
            )
            return
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"pullgate-shadow-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        current = self.state.current
        event(
            log,
            logging.INFO if current is not None else logging.WARNING,
            "shadow_started",
            directory=self.directory,
            revision=current.revision if current is not None else "",
            active=current is not None,
        )

    def stop(self, timeout: float = 1.0) -> None:
        """Stop following the directory and the workers. Queued requests are discarded; an
        evaluation in flight is not waited for beyond ``timeout`` (its thread is a daemon)."""
        self._stopping.set()
        self.reloader.stop()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- the request path ------------------------------------------------------------------

    def offer(self, request: Request, live: Judgement) -> None:
        """Shadow ``request``, which the live set judged ``live``, later. Never blocks, never
        raises: this runs on the RPC thread, after the live judgement is made."""
        try:
            if self.state.current is None or self._stopping.is_set() or not self._threads:
                return  # the shadow is off
            self._queue.put_nowait((request, live))
        except queue.Full:
            self._dropped()
        except Exception:  # nothing the shadow does may reach the live answer
            self._count("errors")

    def _dropped(self) -> None:
        self._count("dropped")
        now = time.monotonic()
        with self._lock:
            if self._last_drop_log and now - self._last_drop_log < DROP_LOG_INTERVAL:
                return
            self._last_drop_log = now
            dropped = self._counts["dropped"]
        event(
            log,
            logging.WARNING,
            "shadow_dropped",
            dropped=dropped,
            queue=self._queue.maxsize,
            action="the shadow falls behind (slow registry?); live judgements are unaffected",
        )

    # -- the workers -------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return
            try:
                self._evaluate(*item)
            except Exception:
                self._count("errors")
                log.exception("shadow evaluation failed")

    def _evaluate(self, request: Request, live: Judgement) -> None:
        policies = self.state.current  # once loaded, never None again
        if policies is None:
            return
        shadow = self.decider.decide(policies, request)
        self._count("evaluations")
        self._hook(self._evaluated)
        if shadow.ok == live.ok:
            return
        kind = WOULD_DENY if live.ok else WOULD_ALLOW
        self._count(kind)
        self._hook(self._difference, kind)
        event(
            log,
            logging.INFO,
            "shadow_difference",
            kind=kind,
            image=live.image,
            digest=live.digest,
            namespace=request.namespace,
            decisionId=live.decision_id,
            liveRevision=live.policy_revision,
            shadowRevision=shadow.policy_revision,
            liveOk=live.ok,
            liveCode=live.code,
            liveReason=live.reason,
            shadowOk=shadow.ok,
            shadowCode=shadow.code,
            shadowReason=shadow.reason,
        )

    def _hook(self, hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            log.exception("a shadow metrics hook failed")

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    # -- reporting ---------------------------------------------------------------------------

    def status(self) -> ShadowStatus:
        current, failure = self.state.current, self.state.failure
        with self._lock:
            counts = dict(self._counts)
        return ShadowStatus(
            directory=self.directory,
            revision=current.revision if current is not None else "",
            policies=len(current.policies) if current is not None else 0,
            load_errors=tuple(str(i) for i in failure.issues) if failure is not None else (),
            evaluations=counts["evaluations"],
            would_deny=counts[WOULD_DENY],
            would_allow=counts[WOULD_ALLOW],
            errors=counts["errors"],
            dropped=counts["dropped"],
        )
