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

    text: str  # the value YAML gives
    mark: Mark  # where its scalar starts
    source: str = ""  # the scalar as written: quotes, escapes, folding and indentation included

    def locate(self, line: int, column: int) -> Mark:
        """The file position of (line, column), 1-based, inside the expression's text.

        YAML changes text on the way in (quotes and escapes go, folded lines join, block
        indentation is stripped), so the value is aligned with its source: each character of
        the value is found in order in the source, and the wanted one's position is mapped
        back to a file line and column.
        """
        lines = self.text.split("\n")
        if not self.source or line > len(lines):
            return self.mark
        offset = sum(len(t) + 1 for t in lines[: line - 1]) + column - 1
        at = _align(self.text, self.source, min(offset, len(self.text)))
        before = self.source[:at]
        newlines = before.count("\n")
        if not newlines:
            return Mark(self.mark.file, self.mark.line, self.mark.column + at)
        return Mark(self.mark.file, self.mark.line + newlines, at - before.rfind("\n"))


def _align(value: str, source: str, offset: int) -> int:
    """The index in ``source`` of the character at ``offset`` in ``value``."""
    pos = 0
    if source[:1] in ("'", '"'):
        pos = 1  # past the opening quote (a plain scalar cannot start with one)
    elif source[:1] in ("|", ">"):
        pos = source.find("\n") + 1  # past the block header ("|", ">-", "|2", ...)
    for i, ch in enumerate(value):
        if ch.isspace() and i != offset:
            continue  # folding and indentation change whitespace; anchor on the rest
        found = source.find(ch, pos)
        if found < 0:
            return pos
        if i == offset:
            return found
        pos = found + 1
    return pos


@dataclass(frozen=True, slots=True)
class KeyAuthority:
    kind: ClassVar[str] = "key"
    public_key: str  # PEM
    tlog: Literal["required", "optional"] = "optional"
    trusted_root: str = "production"  # where Rekor's keys come from, to check a SET


@dataclass(frozen=True, slots=True)
class KeylessAuthority:
    kind: ClassVar[str] = "keyless"
    issuer: str = ""
    issuer_regexp: str = ""
    subject: str = ""
    subject_regexp: str = ""
    trusted_root: str = "production"  # "production" | "staging" | absolute path to a JSON file
    ctlog: Literal["required", "optional"] = "required"
    # "optional" allows signatures without a Rekor SET (a private PKI without a log); their
    # certificates are then checked at the current time.
    tlog: Literal["required", "optional"] = "required"


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
    references: tuple[str, ...] = ()  # files read through `path:` keys

    def by_name(self) -> Mapping[str, ImagePolicy]:
        return {p.name: p for p in self.policies}
