"""``pullgate serve``: the daemon. gRPC ``ImageVerifier`` on unix sockets and TLS TCP,
standard health checking and reflection, live policy reload, graceful drain on SIGTERM.

Status codes: a malformed request → INVALID_ARGUMENT; no policy set ever loaded → UNAVAILABLE;
too many RPCs in flight, or no verification slot free in time (``limits.concurrentVerifications``,
``limits.verificationWait``) → RESOURCE_EXHAUSTED; anything unexpected → INTERNAL. Each of them
makes ``pullgate-containerd`` block the pull (unless it runs with ``--fail-open``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from . import metrics
from .api import judgement_to_proto, request_from_proto
from .cel import EngineUnavailable
from .config import Config
from .decide import Decider, Options
from .judgements import JudgementCache, request_key
from .limits import Busy, VerificationSlots
from .logs import event
from .malloc import cap_malloc_arenas
from .reload import PolicyState, Reloader
from .request import InvalidRequest, check_request
from .rules import engine_named
from .shadow import Shadow
from .snapshot import PolicySnapshot
from .v1 import verifier_pb2 as pb
from .v1 import verifier_pb2_grpc as pb_grpc
from .verifiers.configure import build_verifiers

__all__ = ["SERVICE", "Daemon", "ServeError", "serve"]

SERVICE = "pullgate.v1.ImageVerifier"
SOCKET_MODE = 0o660
log = logging.getLogger("pullgate.server")


class ServeError(Exception):
    """The daemon cannot start; the message says what to fix."""


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else ""


class VerifierService(pb_grpc.ImageVerifierServicer):
    def __init__(
        self,
        state: PolicyState,
        decider: Decider,
        policy_dir: str,
        slots: VerificationSlots | None = None,
        shadow: Shadow | None = None,
    ) -> None:
        self.state = state
        self.decider = decider
        self.policy_dir = policy_dir
        self.slots = slots
        self.shadow = shadow

    def _abort(self, context: grpc.ServicerContext, code: grpc.StatusCode, why: str) -> NoReturn:
        context.abort(code, why)
        raise AssertionError("unreachable")  # abort raises

    def Verify(self, request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyResponse:
        policies = self.state.current  # one read: this request sees one complete set
        if policies is None:
            failure = self.state.failure
            why = failure.issues[0] if failure is not None and failure.issues else "loading"
            self._abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                f"no policy set has loaded yet ({why})",
            )
        try:
            checked = check_request(request_from_proto(request), require_digest=True)
            judgements = self.decider.judgements
            if self.slots is None or (
                judgements is not None
                and judgements.get(request_key(policies.revision, checked)) is not None
            ):  # a cached judgement never waits for a verification slot
                judgement = self.decider.decide(policies, checked)
            else:
                with self.slots.slot(context.time_remaining()):
                    judgement = self.decider.decide(policies, checked)
        except InvalidRequest as exc:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Busy as exc:
            self._abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except Exception:
            log.exception("verify failed")
            self._abort(context, grpc.StatusCode.INTERNAL, "internal error; see the daemon log")
        if self.shadow is not None:
            self.shadow.offer(checked, judgement)  # queues only; never raises (shadow.py)
        return judgement_to_proto(judgement)

    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        current, failure = self.state.current, self.state.failure
        response = pb.StatusResponse(
            policy_revision=current.revision if current is not None else "",
            policy_dir=self.policy_dir,
            policies=len(current.policies) if current is not None else 0,
            loaded_at=_rfc3339(self.state.loaded_at) if current is not None else "",
            load_errors=[str(i) for i in failure.issues] if failure is not None else [],
            failed_at=_rfc3339(failure.at) if failure is not None else "",
        )
        if self.shadow is not None:
            shadow = self.shadow.status()
            response.shadow_dir = shadow.directory
            response.shadow_revision = shadow.revision
            response.shadow_policies = shadow.policies
            response.shadow_load_errors.extend(shadow.load_errors)
            response.shadow_evaluations = shadow.evaluations
            response.shadow_would_deny = shadow.would_deny
            response.shadow_would_allow = shadow.would_allow
            response.shadow_errors = shadow.errors
            response.shadow_dropped = shadow.dropped
        return response


@dataclass(frozen=True, slots=True)
class Listener:
    address: str  # as configured
    target: str  # as gRPC binds it
    socket_path: str = ""  # unix sockets only


def _prepare_unix(address: str) -> Listener:
    path = address[len("unix://") :]
    if not path.startswith("/"):
        raise ServeError(f"listen address {address!r}: write an absolute path, unix:///run/x.sock")
    if len(path.encode()) > 107:  # sun_path holds 108 bytes with the terminating NUL
        raise ServeError(f"socket path {path!r} is longer than 107 bytes; choose a shorter one")
    parent = Path(path).parent
    parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ServeError(f"{path} exists and is not a socket; remove it or listen elsewhere")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # a stale socket from a daemon that died
        else:
            raise ServeError(f"another process is serving on {path}; stop it first")
        finally:
            probe.close()
    return Listener(address, f"unix://{path}", path)


def _credentials(config: Config, address: str) -> grpc.ServerCredentials:
    tls = config.tls
    if not (tls.cert and tls.key):
        raise ServeError(
            f"listen address {address!r} is TCP, which pullgate serves only over TLS: "
            "set tls.cert and tls.key (and tls.clientCA for mTLS)"
        )
    try:
        key, cert = Path(tls.key).read_bytes(), Path(tls.cert).read_bytes()
        ca = Path(tls.client_ca).read_bytes() if tls.client_ca else None
    except OSError as exc:
        raise ServeError(f"cannot read TLS material: {exc}") from None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


class Daemon:
    """The running daemon: a gRPC server, the policy state, and its reloader."""

    def __init__(self, config: Config) -> None:
        self.config = config
        try:
            engine_named(config.cel.engine)
        except EngineUnavailable as exc:
            raise ServeError(f"cel.engine: {exc}") from None
        event(log, logging.INFO, "cel_engine", engine=config.cel.engine)
        self.state = PolicyState()
        self.decider = Decider(
            build_verifiers(config),
            judgements=JudgementCache(
                config.cache.judgement_ttl, max_entries=config.cache.max_entries
            ),
            options=Options(
                default_action=config.default_action,
                unknown_namespace=config.unknown_namespace,
                registry_timeout=config.registry.timeout,
            ),
        )
        self.reloader = Reloader.configured(
            config,
            config.policies,
            self.state,
            snapshot=PolicySnapshot(config.state_dir) if config.state_dir else None,
            on_result=metrics.policy_reloaded,
        )
        # --shadow-policies: a candidate set judged beside this one, never deciding
        self.shadow = (
            Shadow(config.shadow_policies, self.decider, config) if config.shadow_policies else None
        )
        self.health = health.HealthServicer()
        self.server = grpc.server(
            ThreadPoolExecutor(
                max_workers=config.server.workers, thread_name_prefix="pullgate-rpc"
            ),
            maximum_concurrent_rpcs=config.server.max_concurrent,
            options=[("grpc.so_reuseport", 0)],
        )
        capacity = config.concurrent_verifications
        self.slots = VerificationSlots(
            capacity,
            wait=config.limits.verification_wait,
            # waiting holds an RPC thread: leave at least one for cached judgements and health
            max_waiting=config.server.workers - capacity - 1,
        )
        self.listeners: list[Listener] = []
        self.metrics_server: metrics.MetricsServer | None = None
        self._stopping = threading.Event()

    def _on_state(self, state: PolicyState) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if state.current is not None
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if not self._stopping.is_set():
            self.health.set("", status)
            self.health.set(SERVICE, status)

    def start(self) -> None:
        config = self.config
        pb_grpc.add_ImageVerifierServicer_to_server(
            VerifierService(self.state, self.decider, config.policies, self.slots, self.shadow),
            self.server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self._on_state(self.state)
        self.state.listeners.append(self._on_state)
        if config.metrics_address:  # before the first load, so that it is counted
            self._serve_metrics(config.metrics_address)
        self.reloader.start()  # the first load happens here; failure leaves NOT_SERVING
        if self.shadow is not None:
            self.shadow.start()  # never raises; a shadow that does not load is off

        bindings: list[tuple[Listener, grpc.ServerCredentials | None]] = []
        for address in config.listen:
            if address.startswith("unix://"):
                bindings.append((_prepare_unix(address), None))
            elif address.startswith("tcp://"):
                listener = Listener(address, address[len("tcp://") :])
                bindings.append((listener, _credentials(config, address)))
            else:
                raise ServeError(f"listen address {address!r}: use unix:///path or tcp://host:port")
        old_umask = os.umask(0o117)  # sockets are born 0660, never briefly world-writable
        try:
            for listener, creds in bindings:
                if creds is None:
                    self.server.add_insecure_port(listener.target)
                else:
                    self.server.add_secure_port(listener.target, creds)
                self.listeners.append(listener)
            self.server.start()
        except RuntimeError as exc:  # grpc reports bind failures this way
            raise ServeError(f"cannot listen: {exc}") from None
        finally:
            os.umask(old_umask)
        for listener in self.listeners:
            if listener.socket_path:
                os.chmod(listener.socket_path, SOCKET_MODE)
        current = self.state.current
        event(
            log,
            logging.INFO,
            "serving",
            listen=[listener.address for listener in self.listeners],
            policies=config.policies,
            revision=current.revision if current is not None else "",
        )

    def _serve_metrics(self, address: str) -> None:
        try:
            self.metrics_server = metrics.serve(
                address, state=self.state, slots=self.slots, verifiers=self.decider.verifiers
            )
        except metrics.MetricsError as exc:
            raise ServeError(str(exc)) from None
        address = self.metrics_server.address
        event(log, logging.INFO, "metrics_serving", address=address, path="/metrics")

    def stop(self) -> None:
        """Stop taking RPCs, let in-flight ones finish (up to ``server.drain``), clean up."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        started = time.monotonic()
        self.server.stop(self.config.server.drain).wait()
        self.reloader.stop()
        if self.shadow is not None:
            self.shadow.stop()
        for listener in self.listeners:
            if listener.socket_path and os.path.exists(listener.socket_path):
                os.unlink(listener.socket_path)
        if self.metrics_server is not None:  # last: a scrape during the drain still answers
            self.metrics_server.stop()
        event(log, logging.INFO, "stopped", drained_seconds=round(time.monotonic() - started, 3))


def serve(config: Config, *, ready: Callable[[Daemon], Any] | None = None) -> int:
    """Run until SIGTERM or SIGINT, then drain and return 0."""
    cap_malloc_arenas()  # before the RPC threads exist (see malloc.py)
    daemon = Daemon(config)
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        event(log, logging.INFO, "signal", signal=signal.Signals(signum).name)
        done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon.start()
        if ready is not None:
            ready(daemon)
        # Short waits: the kernel may deliver the signal to one of gRPC's threads, and Python
        # runs handlers only when the main thread runs bytecode.
        while not done.wait(0.2):
            pass
    finally:
        daemon.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
