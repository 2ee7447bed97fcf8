"""Validated, immutable policy documents. Nothing here is compiled yet (see ``rules.py``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import ClassVar, Literal

from ..evidence import Evidence
from ..globs import Glob
from ..request import Request
from .errors import Mark

__all__ = [
    "Authority",
    "AuthoritySpec",
    "Expect",
    "Expr",
    "ImagePolicy",
    "KeyAuthority",
    "KeylessAuthority",
    "NotationAuthority",
    "PolicySet",
    "PolicyTest",
    "Rule",
    "TestCase",
]

API_VERSION = "pullgate.dev/v1alpha1"
Mode = Literal["enforce", "audit"]


@dataclass(frozen=True, slots=True)
class Expr:
    """A CEL expression with where it sits in its file."""

    text: str
    mark: Mark
    style: str = ""  # YAML scalar style: "" plain, quotes, or "|" / ">" block
    indent: int = 0

    def locate(self, line: int, column: int) -> Mark:
        """The file position of (line, column), 1-based, inside the expression."""
        if self.style in ("|", ">"):
            return Mark(self.mark.file, self.mark.line + line, self.indent + column)
        if line > 1:  # a multi-line flow scalar: point at the expression itself
            return self.mark
        quote = 1 if self.style in ('"', "'") else 0
        return Mark(self.mark.file, self.mark.line, self.mark.column + quote + column - 1)


@dataclass(frozen=True, slots=True)
class KeyAuthority:
    kind: ClassVar[str] = "key"
    public_key: str  # PEM
    tlog: Literal["required", "optional"] = "optional"


@dataclass(frozen=True, slots=True)
class KeylessAuthority:
    kind: ClassVar[str] = "keyless"
    issuer: str = ""
    issuer_regexp: str = ""
    subject: str = ""
    subject_regexp: str = ""
    trusted_root: str = "production"  # "production" | "staging" | absolute path to a JSON file
    ctlog: Literal["required", "optional"] = "required"


@dataclass(frozen=True, slots=True)
class NotationAuthority:
    kind: ClassVar[str] = "notation"
    trust_store_type: Literal["ca", "signingAuthority"]
    certificates: str  # PEM, one or more
    trusted_identities: tuple[str, ...]
    level: Literal["strict", "permissive", "audit", "skip"] = "strict"


AuthoritySpec = KeyAuthority | KeylessAuthority | NotationAuthority


@dataclass(frozen=True, slots=True)
class Authority:
    name: str
    spec: AuthoritySpec
    mark: Mark
    fingerprint: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # What the authority trusts, not what it is called: two policies naming the same key
        # share one verification and one cache entry.
        canonical = json.dumps([self.spec.kind, asdict(self.spec)], sort_keys=True)
        object.__setattr__(self, "fingerprint", hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def kind(self) -> str:
        return self.spec.kind


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    expr: Expr
    message: str = ""


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    name: str
    mark: Mark  # the document
    images: tuple[Glob, ...]
    mode: Mode = "enforce"
    exclude: tuple[Glob, ...] = ()
    namespaces: tuple[Glob, ...] = ()
    digests: frozenset[str] = frozenset()
    when: Expr | None = None
    authorities: tuple[Authority, ...] = ()
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class Expect:
    ok: bool
    policy: str = ""  # a policy that must fail (deny or audit warning)
    rule: str = ""  # a rule of that policy that must fail
    reason: str = ""  # a substring the reason must contain


@dataclass(frozen=True, slots=True)
class TestCase:
    __test__: ClassVar[bool] = False  # not a pytest class
    name: str
    mark: Mark
    request: Request
    expect: Expect
    # Assumed evidence by "authority" (every authority of that name) or "policy/authority".
    evidence: Mapping[str, Evidence] = field(default_factory=dict)
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class PolicyTest:
    __test__: ClassVar[bool] = False
    name: str
    mark: Mark
    cases: tuple[TestCase, ...]
    policies: str = ""  # directory of the policies under test; "" = the directory loaded


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every document of one directory revision."""

    root: str
    revision: str  # a hash of every file's path and content (and files they reference)
    policies: tuple[ImagePolicy, ...]
    tests: tuple[PolicyTest, ...] = ()
    files: tuple[str, ...] = ()

    def by_name(self) -> Mapping[str, ImagePolicy]:
        return {p.name: p for p in self.policies}
