"""Globs over image names ("registry/repository") and namespaces.

``*`` matches within one path segment (never ``/``), ``?`` one character other than ``/``, and
``**`` any depth: as a whole segment it matches zero or more segments in the middle
(``ghcr.io/**/app`` matches ``ghcr.io/app`` and ``ghcr.io/a/b/app``), one or more at the end
(``ghcr.io/acme/**`` matches ``ghcr.io/acme/x`` and ``ghcr.io/acme/a/b``, not ``ghcr.io/acme``).
Globs are anchored at both ends: ``ghcr.io/acme/*`` matches neither ``ghcr.io/acme-evil/x`` nor
``ghcr.io/acme/a/b``.

Patterns compile to RE2, so matching is linear in the name whatever the pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import re2

__all__ = ["MAX_PATTERN_CHARS", "Glob", "GlobError", "compile_glob", "glob_match"]

MAX_PATTERN_CHARS = 4096
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20

# Characters that may appear in a normalised image name, besides the wildcards. Hosts keep
# ":" (ports) and brackets (IPv6).
_NAME_CHARS = re.compile(r"[a-z0-9._\-/:\[\]]*")
_NAMESPACE_CHARS = re.compile(r"[a-z0-9\-]*")
_WILDCARD = re.compile(r"\*\*|\*|\?")


class GlobError(ValueError):
    """A glob that cannot mean what its author intended; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled glob. ``prefix`` is its leading run of literal path segments."""

    pattern: str
    prefix: tuple[str, ...]
    _regex: re2._Regexp = field(repr=False, compare=False)

    def match(self, text: str) -> bool:
        return self._regex.fullmatch(text) is not None


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _WILDCARD.finditer(segment):
        out.append(re.escape(segment[pos : m.start()]))
        out.append({"**": ".*", "*": "[^/]*", "?": "[^/]"}[m.group()])
        pos = m.end()
    out.append(re.escape(segment[pos:]))
    return "".join(out)


def _translate(pattern: str) -> str:
    segments = pattern.split("/")
    parts: list[str] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "**":
            if i == last:
                # "a/**": one or more segments below a; a lone "**": anything at all.
                parts.append(".+" if i == 0 else "/.+")
            else:
                # "**/" in front or in the middle: zero or more whole segments.
                parts.append("(?:[^/]+/)*" if i == 0 else "/(?:[^/]+/)*")
            continue
        sep = "" if i == 0 or segments[i - 1] == "**" else "/"
        parts.append(sep + _translate_segment(seg))
    return "".join(parts)


def _check(pattern: str, what: str, chars: re.Pattern[str]) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise GlobError(f"{what} glob must be a non-empty string, got {pattern!r}")
    if pattern != pattern.strip():
        raise GlobError(f"{what} glob {pattern!r} has leading or trailing whitespace; remove it")
    if pattern != pattern.lower():
        raise GlobError(
            f"{what} glob {pattern!r} has upper-case letters, but names are lower-case; "
            f"write {pattern.lower()!r}"
        )
    segments = pattern.split("/")
    for seg in segments:
        if seg == "":
            raise GlobError(
                f"{what} glob {pattern!r} has an empty path segment; remove the extra '/'"
            )
        if "**" in seg and seg != "**":
            raise GlobError(
                f"{what} glob {pattern!r}: '**' must be a whole path segment "
                "(use '*' within a segment, '**' between slashes)"
            )
    if "/**/**" in f"/{pattern}":
        raise GlobError(f"{what} glob {pattern!r} repeats '**'; one '**' already spans any depth")
    bad = "".join(sorted({c for c in _WILDCARD.sub("", pattern) if not chars.fullmatch(c)}))
    if bad:
        raise GlobError(
            f"{what} glob {pattern!r} has characters that never occur in {what}s: {bad!r} "
            "(only '*', '**' and '?' are wildcards)"
        )


def _check_registry(pattern: str) -> None:
    first, _, rest = pattern.partition("/")
    if "[" in rest or "]" in rest:
        raise GlobError(f"image glob {pattern!r}: brackets only occur in IPv6 registry hosts")
    if _WILDCARD.search(first) or "." in first or ":" in first or first == "localhost":
        return
    hint = f"docker.io/library/{pattern}" if not rest else f"docker.io/{pattern}"
    raise GlobError(
        f"image glob {pattern!r} does not start with a registry, but globs match the full "
        f"normalised name registry/repository: write {hint!r}"
    )


def compile_glob(pattern: str, *, kind: str = "image") -> Glob:
    """Compile a glob.

    ``kind`` is ``"image"`` (over registry/repository: checked strictly, since a glob that can
    never match silently selects nothing), ``"namespace"``, or ``"text"`` (the CEL ``glob``
    function over any string, where ``**`` inside a segment also spans ``/``).
    """
    if kind == "image":
        _check(pattern, kind, _NAME_CHARS)
        _check_registry(pattern)
    elif kind == "namespace":
        _check(pattern, kind, _NAMESPACE_CHARS)
        if "/" in pattern:
            raise GlobError(f"namespace glob {pattern!r} has '/', but namespaces never do")
    elif kind != "text":
        raise ValueError(f"unknown glob kind {kind!r}")
    elif not pattern:
        raise GlobError("glob pattern is empty; it would only match an empty string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise GlobError(f"glob pattern is longer than {MAX_PATTERN_CHARS} characters")
    prefix: list[str] = []
    for seg in pattern.split("/"):
        if _WILDCARD.search(seg):
            break
        prefix.append(seg)
    try:
        regex = re2.compile(_translate(pattern), _RE2_OPTIONS)
    except re2.error as exc:  # e.g. "pattern too large" for huge inputs
        raise GlobError(f"glob pattern {pattern[:60]!r} cannot be compiled: {exc}") from None
    return Glob(pattern=pattern, prefix=tuple(prefix), _regex=regex)


@lru_cache(maxsize=4096)
def _cached(pattern: str) -> Glob:
    return compile_glob(pattern, kind="text")


def glob_match(text: str, pattern: str) -> bool:
    """Match any ``text`` against a glob (the CEL ``glob`` function); patterns are cached."""
    return _cached(pattern).match(text)
