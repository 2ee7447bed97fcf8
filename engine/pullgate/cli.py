"""``pullgate``: serve, check, test and verify policies from the command line.

Exit codes: ``verify`` 0 allowed, 1 denied, 2 could not decide; ``check`` 0 valid, 1 invalid;
``test`` 0 every case passed, 1 otherwise; ``status`` 0 serving with no load error, 1
otherwise, 2 unreachable; ``health`` 0 SERVING, 1 NOT_SERVING, 2 unreachable; ``serve`` 0
after a graceful stop, 2 when it cannot start. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from .api import judgement_from_proto, request_to_proto
from .cel import DEFAULT_ENGINE, ENGINES, EngineUnavailable
from .client import ClientTLS, connect
from .config import DEFAULT_SOCKET, Config, ConfigError, load_config
from .decide import Decider, Options, Trace
from .explain import Explanation, explain
from .judgement import Judgement
from .limits import DEFAULT_LIMITS, Limits
from .logs import setup_logging
from .policy import PolicyLoadError
from .policytest import run_policy_tests
from .reference import InvalidReference, parse_digest, parse_reference
from .request import OPERATIONS, Descriptor, InvalidRequest, Request
from .rules import load_policies
from .server import ServeError, serve
from .v1 import verifier_pb2 as pb
from .v1.verifier_pb2_grpc import ImageVerifierStub
from .verifiers.configure import build_registry, build_verifiers

if TYPE_CHECKING:
    from .registry import RegistryClient

T = TypeVar("T")

__all__ = ["main"]

EXIT_OK, EXIT_DENIED, EXIT_ERROR = 0, 1, 2


class _UsageError(Exception):
    pass


def _pairs(values: Sequence[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for value in values or ():
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise _UsageError(f"{flag} takes KEY=VALUE, got {value!r}")
        out[key] = val
    return out


def _load_errors(exc: PolicyLoadError, out: TextIO) -> None:
    print(exc.summary(), file=out)


def _print_judgement(j: Judgement, out: TextIO) -> None:
    verdict = "ALLOWED" if j.ok else "DENIED"
    print(
        f"{verdict} {j.image}{'' if '@' in j.image or not j.digest else '@' + j.digest}", file=out
    )
    print(f"  reason:   {j.reason}", file=out)
    if j.code:
        print(f"  code:     {j.code}", file=out)
    print(f"  revision: {j.policy_revision}   decision: {j.decision_id}", file=out)
    for w in j.warnings:
        print(f"  warning:  {w}", file=out)
    for p in j.policies:
        state = "passed" if p.passed else "FAILED"
        print(f"  policy {p.name} ({p.mode}): {state}", file=out)
        for a in p.authorities:
            if a.verified:
                print(f"    authority {a.name}: verified ({a.signatures} signature(s))", file=out)
            else:
                print(f"    authority {a.name}: not verified: {a.error}", file=out)
        for r in p.rules:
            line = f"    rule {r.name}: {'true' if r.passed else 'FALSE'}"
            if not r.passed and r.message:
                line += f": {r.message}"
            if r.error:
                line += f" (error: {r.error})"
            print(line, file=out)


def _engine_error(exc: Exception) -> int:
    print(f"pullgate: --cel-engine: {exc}", file=sys.stderr)
    return EXIT_ERROR


def _limits(args: argparse.Namespace) -> Limits:
    """The ``limits:`` of ``--config`` (to check as the daemon loads), else the defaults."""
    return load_config(args.config).limits if args.config else DEFAULT_LIMITS


def cmd_check(args: argparse.Namespace) -> int:
    try:
        compiled = load_policies(args.dir, engine=args.cel_engine, limits=_limits(args))
    except ConfigError as exc:
        print(exc.summary(), file=sys.stderr)
        return 1
    except PolicyLoadError as exc:
        _load_errors(exc, sys.stderr)
        return 1
    except EngineUnavailable as exc:
        return _engine_error(exc)
    rules = sum(len(p.rules) for p in compiled.policies)
    cases = sum(len(t.cases) for t in compiled.tests)
    print(
        f"{args.dir}: OK: {len(compiled.policies)} policies, {rules} rules, {cases} test cases; "
        f"revision {compiled.revision}"
    )
    return 0


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    config = config.with_overrides(
        policies=args.policies,
        default_action=getattr(args, "default_action", None),
        unknown_namespace=getattr(args, "unknown_namespace", None),
    )
    return config.with_cel_engine(args.cel_engine)


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ConfigError as exc:
        print(exc.summary(), file=sys.stderr)
        return EXIT_ERROR
    try:
        digest = parse_digest(args.digest) if args.digest else ""
        request = Request(
            image_name=args.ref,
            descriptor=Descriptor(digest=digest),
            operation=args.operation,
            namespace=args.namespace or "",
            labels=_pairs(args.label, "--label"),
            annotations=_pairs(args.annotation, "--annotation"),
        )
    except InvalidReference as exc:
        print(f"pullgate: --digest: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except _UsageError as exc:
        print(f"pullgate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.server:
        if args.explain:
            print("pullgate: --explain judges locally; drop --server", file=sys.stderr)
            return EXIT_ERROR
        return _verify_remote(args, request)
    try:
        compiled = load_policies(config.policies, engine=config.cel.engine)
    except PolicyLoadError as exc:
        _load_errors(exc, sys.stderr)
        return EXIT_ERROR
    except EngineUnavailable as exc:
        return _engine_error(exc)
    from .registry.budget import registry_budget

    registry = build_registry(config)
    decider = Decider(
        build_verifiers(config, registry),
        options=Options(
            default_action=config.default_action,
            unknown_namespace=config.unknown_namespace,
            registry_timeout=config.registry.timeout,
        ),
    )
    try:
        # registry.timeout bounds resolving the tag and gathering the evidence together.
        with registry_budget(config.registry.timeout):
            if not digest and "@" not in args.ref:
                request = _resolved(request, registry)
            trace = Trace() if args.explain else None
            judgement = decider.decide(compiled, request, trace=trace)
    except InvalidRequest as exc:
        print(f"pullgate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if trace is None:
        return _show(judgement, args.json)
    why = explain(compiled, request, judgement, trace, options=decider.options)
    return _show(judgement, args.json, why)


def _resolved(request: Request, registry: RegistryClient) -> Request:
    """The request with the digest the registry serves for its tag (as containerd resolves it).

    Failing that, the request as it was: policies that need no signature still decide, the
    others report "no digest to verify".
    """
    from .registry import RegistryError

    try:
        ref = parse_reference(request.image_name)
        digest = registry.resolve(ref.registry, ref.repository, ref.effective_tag)
    except (InvalidReference, RegistryError) as exc:
        reason = getattr(exc, "reason", str(exc))
        name = request.image_name
        print(f"pullgate: cannot resolve {name} to a digest: {reason}", file=sys.stderr)
        return request
    print(f"pullgate: {request.image_name} resolves to {digest}", file=sys.stderr)
    return replace(request, descriptor=replace(request.descriptor, digest=digest))


def _show(judgement: Judgement, as_json: bool, explanation: Explanation | None = None) -> int:
    if as_json:
        document = judgement.to_json()
        if explanation is not None:
            document["explanation"] = explanation.to_json()
        print(json.dumps(document, indent=2))
    else:
        _print_judgement(judgement, sys.stdout)
        if explanation is not None:
            print("\n".join(explanation.lines()))
    return EXIT_OK if judgement.ok else EXIT_DENIED


def _tls(args: argparse.Namespace) -> ClientTLS:
    return ClientTLS(ca=args.tls_ca or "", cert=args.tls_cert or "", key=args.tls_key or "")


def _verify_remote(args: argparse.Namespace, request: Request) -> int:
    """Ask a daemon. It judges resolved digests only, as containerd gives them."""
    try:
        ref = parse_reference(request.image_name)
    except InvalidReference as exc:
        print(f"pullgate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    digest = request.descriptor.digest or ref.digest or ""
    if not digest:
        print("pullgate: --server needs a digest: give REF@sha256:... or --digest", file=sys.stderr)
        return EXIT_ERROR
    request = replace(request, descriptor=replace(request.descriptor, digest=digest))
    response = _ask(args, lambda stub: stub.Verify(request_to_proto(request), timeout=args.timeout))
    if response is None:
        return EXIT_ERROR
    return _show(judgement_from_proto(response, image=str(ref), digest=digest), args.json)


def _ask(args: argparse.Namespace, call: Callable[[ImageVerifierStub], T]) -> T | None:
    """One call to the daemon at ``--server``; None (with the reason on stderr) on failure."""
    try:
        channel, stub = connect(args.server, _tls(args))
    except (ValueError, OSError) as exc:
        print(f"pullgate: --server: {exc}", file=sys.stderr)
        return None
    with channel:
        try:
            return call(stub)
        except grpc.RpcError as exc:
            print(f"pullgate: {args.server}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return None


def cmd_status(args: argparse.Namespace) -> int:
    status = _ask(args, lambda stub: stub.Status(pb.StatusRequest(), timeout=args.timeout))
    if status is None:
        return EXIT_ERROR
    if status.policy_revision:
        print(
            f"serving revision {status.policy_revision} ({status.policies} policies from "
            f"{status.policy_dir}, loaded {status.loaded_at})"
        )
    else:
        print(f"serving nothing yet: no policy set from {status.policy_dir} has loaded")
    if status.load_errors:
        print(f"last load rejected at {status.failed_at}:")
        for line in status.load_errors:
            print(f"  {line}")
    if status.shadow_dir:
        _print_shadow(status)
    return 0 if status.policy_revision and not status.load_errors else 1


def _print_shadow(status: pb.StatusResponse) -> None:
    """The shadow policies' part of ``pullgate status`` (it never changes the exit code)."""
    if status.shadow_revision:
        print(
            f"shadow revision {status.shadow_revision} ({status.shadow_policies} policies from "
            f"{status.shadow_dir}): {status.shadow_evaluations} requests judged by both, "
            f"{status.shadow_would_deny} would be denied, {status.shadow_would_allow} would be "
            f"allowed, {status.shadow_errors} errors, {status.shadow_dropped} dropped"
        )
    else:
        print(f"shadow off: no policy set from {status.shadow_dir} has loaded")
    if status.shadow_load_errors:
        print("last shadow load rejected:")
        for line in status.shadow_load_errors:
            print(f"  {line}")


def cmd_health(args: argparse.Namespace) -> int:
    """grpc.health.v1 over the daemon's socket: the exec probe for a daemon without a TCP port.

    With ``--live``, any answer counts (a daemon waiting for a good policy set is alive, and
    restarting it would not help); only an unreachable daemon fails.
    """
    try:
        channel, _ = connect(args.address, _tls(args))
    except (ValueError, OSError) as exc:
        print(f"pullgate: --address: {exc}", file=sys.stderr)
        return EXIT_ERROR
    # The method by path: the typing stubs of grpc_health's HealthStub declare no methods.
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    with channel:
        try:
            reply: health_pb2.HealthCheckResponse = check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(f"pullgate: {args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return EXIT_ERROR
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.address}: {args.service or '(server)'}: {name}")
    return 0 if serving or args.live else 1


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config).with_overrides(
            policies=args.policies,
            state_dir=args.state_dir,
            shadow_policies=args.shadow_policies,
        )
        config = config.with_cel_engine(args.cel_engine)
    except ConfigError as exc:
        print(exc.summary(), file=sys.stderr)
        return EXIT_ERROR
    config = config.with_listen(args.listen)
    listener = setup_logging(config.log_format, background=True)
    try:
        return serve(config)
    except ServeError as exc:
        print(f"pullgate serve: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if listener is not None:
            listener.stop()  # writes out every queued line


def cmd_test(args: argparse.Namespace) -> int:
    try:
        results = run_policy_tests(args.dir, engine=args.cel_engine, limits=_limits(args))
    except ConfigError as exc:
        print(exc.summary(), file=sys.stderr)
        return 1
    except PolicyLoadError as exc:
        _load_errors(exc, sys.stderr)
        return 1
    except EngineUnavailable as exc:
        return _engine_error(exc)
    if not results:
        print(f"{args.dir}: no PolicyTest cases found; nothing was tested", file=sys.stderr)
        return 1
    failed = [r for r in results if not r.passed]
    for r in results:
        if r.passed:
            print(f"PASS {r.test} / {r.case}")
        else:
            print(f"FAIL {r.test} / {r.case}  ({r.mark})")
            for problem in r.problems:
                print(f"     - {problem}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _tls_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-ca", metavar="PEM", help="CA of the daemon's certificate (tcp://)")
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate, for mTLS")
    parser.add_argument("--tls-key", metavar="PEM", help="client key, for mTLS")


def _engine_flag(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--cel-engine",
        choices=ENGINES,
        default=default,
        help=f"CEL engine (default: {default or 'from config, else ' + DEFAULT_ENGINE})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pullgate", description="Verify container images against YAML/CEL signing policies."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="validate and compile a policy directory")
    check.add_argument("dir", metavar="DIR")
    check.add_argument("--config", metavar="FILE", help="take limits: from this daemon config")
    _engine_flag(check, DEFAULT_ENGINE)
    check.set_defaults(func=cmd_check)

    verify = sub.add_parser("verify", help="judge one image reference")
    verify.add_argument("ref", metavar="REF", help="image reference, e.g. ghcr.io/acme/app:v1")
    verify.add_argument("--digest", help="the resolved digest (algo:hex)")
    verify.add_argument("--namespace", help="Kubernetes namespace of the pod")
    verify.add_argument("--operation", choices=OPERATIONS, default="pull")
    verify.add_argument("--label", action="append", metavar="KEY=VALUE", help="pod label")
    verify.add_argument("--annotation", action="append", metavar="KEY=VALUE", help="pod annotation")
    verify.add_argument("--policies", metavar="DIR", help="policy directory (default: from config)")
    verify.add_argument("--config", metavar="FILE", help="daemon config file (pullgate.yaml)")
    verify.add_argument("--default-action", choices=("deny", "allow"))
    verify.add_argument("--unknown-namespace", choices=("apply", "skip"))
    verify.add_argument("--json", action="store_true", help="print the VerifyResponse as JSON")
    verify.add_argument(
        "--explain",
        action="store_true",
        help="also say why: selection, evidence, rule values and failing sub-expressions",
    )
    verify.add_argument("--server", metavar="ADDR", help="ask this daemon instead of --policies")
    verify.add_argument("--timeout", type=float, default=10.0, help="seconds, with --server")
    _tls_flags(verify)
    _engine_flag(verify, None)
    verify.set_defaults(func=cmd_verify)

    serve_cmd = sub.add_parser("serve", help="run the daemon")
    serve_cmd.add_argument("--config", metavar="FILE", help="daemon config file (pullgate.yaml)")
    serve_cmd.add_argument("--policies", metavar="DIR", help="policy directory")
    serve_cmd.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the last applied revision is kept (stateDir; '' turns it off)",
    )
    serve_cmd.add_argument(
        "--listen", action="append", metavar="ADDR", help="unix:///path or tcp://host:port"
    )
    serve_cmd.add_argument(
        "--shadow-policies",
        metavar="DIR",
        help="also judge every request with this candidate policy directory, never deciding: "
        "log and count where it differs (shadowPolicies)",
    )
    _engine_flag(serve_cmd, None)
    serve_cmd.set_defaults(func=cmd_serve)

    status = sub.add_parser("status", help="ask a daemon what it serves")
    status.add_argument("--server", metavar="ADDR", default=DEFAULT_SOCKET)
    status.add_argument("--timeout", type=float, default=5.0)
    _tls_flags(status)
    status.set_defaults(func=cmd_status)

    health = sub.add_parser("health", help="ask a daemon's gRPC health service (for probes)")
    health.add_argument("--address", metavar="ADDR", default=DEFAULT_SOCKET)
    health.add_argument("--service", default="pullgate.v1.ImageVerifier", help="'' for the server")
    health.add_argument("--timeout", type=float, default=3.0)
    health.add_argument("--live", action="store_true", help="exit 0 on any answer (liveness)")
    _tls_flags(health)
    health.set_defaults(func=cmd_health)

    test = sub.add_parser("test", help="run PolicyTest cases offline")
    test.add_argument("dir", metavar="DIR")
    test.add_argument("--config", metavar="FILE", help="take limits: from this daemon config")
    _engine_flag(test, DEFAULT_ENGINE)
    test.set_defaults(func=cmd_test)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("json")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
