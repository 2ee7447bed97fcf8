"""``pullgate``: check, test and verify policies from the command line.

Exit codes: ``verify`` 0 allowed, 1 denied, 2 could not decide; ``check`` 0 valid, 1 invalid;
``test`` 0 every case passed, 1 otherwise. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from .config import Config, ConfigError, load_config
from .decide import Decider, Options
from .judgement import Judgement
from .policy import PolicyLoadError
from .policytest import run_policy_tests
from .reference import InvalidReference, parse_digest
from .request import OPERATIONS, Descriptor, InvalidRequest, Request
from .rules import load_policies

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


def cmd_check(args: argparse.Namespace) -> int:
    try:
        compiled = load_policies(args.dir)
    except PolicyLoadError as exc:
        _load_errors(exc, sys.stderr)
        return 1
    rules = sum(len(p.rules) for p in compiled.policies)
    cases = sum(len(t.cases) for t in compiled.tests)
    print(
        f"{args.dir}: OK: {len(compiled.policies)} policies, {rules} rules, {cases} test cases; "
        f"revision {compiled.revision}"
    )
    return 0


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    return config.with_overrides(
        policies=args.policies,
        default_action=getattr(args, "default_action", None),
        unknown_namespace=getattr(args, "unknown_namespace", None),
    )


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
    try:
        compiled = load_policies(config.policies)
    except PolicyLoadError as exc:
        _load_errors(exc, sys.stderr)
        return EXIT_ERROR
    decider = Decider(
        options=Options(
            default_action=config.default_action, unknown_namespace=config.unknown_namespace
        )
    )
    if not digest and "@" not in args.ref:
        print(
            "pullgate: no digest given (REF@sha256:... or --digest): "
            "authorities cannot be verified",
            file=sys.stderr,
        )
    try:
        judgement = decider.decide(compiled, request)
    except InvalidRequest as exc:
        print(f"pullgate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(judgement.to_json(), indent=2))
    else:
        _print_judgement(judgement, sys.stdout)
    return EXIT_OK if judgement.ok else EXIT_DENIED


def cmd_test(args: argparse.Namespace) -> int:
    try:
        results = run_policy_tests(args.dir)
    except PolicyLoadError as exc:
        _load_errors(exc, sys.stderr)
        return 1
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pullgate", description="Verify container images against YAML/CEL signing policies."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="validate and compile a policy directory")
    check.add_argument("dir", metavar="DIR")
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
    verify.set_defaults(func=cmd_verify)

    test = sub.add_parser("test", help="run PolicyTest cases offline")
    test.add_argument("dir", metavar="DIR")
    test.set_defaults(func=cmd_test)
    return parser


def _setup_logging() -> None:
    """Decision lines and diagnostics go to stderr, one line each."""
    root = logging.getLogger("pullgate")
    if not any(getattr(h, "pullgate", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.pullgate = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
