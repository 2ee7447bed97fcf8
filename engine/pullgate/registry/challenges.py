"""``WWW-Authenticate`` challenges (RFC 7235), parsed for the client's Basic and Bearer auth."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Challenge", "parse_challenges"]

# RFC 7230 token and RFC 7235 token68 characters.
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: a scheme (lower-cased) and its parameters (names
    lower-cased)."""

    scheme: str
    params: Mapping[str, str]


def parse_challenges(value: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235): one or more challenges, each a scheme and
    either comma-separated ``name=value`` parameters (values may be quoted and hold commas) or a
    token68. Unparseable trailing text is ignored: a partial answer beats none."""
    challenges: list[Challenge] = []
    pos, end = 0, len(value)

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < end and value[pos] in chars:
            pos += 1

    while pos < end:
        skip(" \t,")
        scheme = _TOKEN_RE.match(value, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        skip(" \t")
        token68 = _TOKEN68_RE.match(value, pos)
        if not _is_param_start(value, pos) and token68 is not None:
            params[""] = token68.group()  # e.g. "Negotiate abc==": kept, never used here
            pos = token68.end()
        while _is_param_start(value, pos):
            name = _TOKEN_RE.match(value, pos)
            assert name is not None  # _is_param_start checked it
            pos = name.end()
            skip(" \t")
            pos += 1  # "="
            skip(" \t")
            params[name.group().lower()], pos = _param_value(value, pos)
            skip(" \t")
            if pos < end and value[pos] == ",":
                pos += 1
                skip(" \t,")
            else:
                break
        challenges.append(Challenge(scheme.group().lower(), params))
    return challenges


def _is_param_start(value: str, pos: int) -> bool:
    """True when ``value[pos:]`` starts with ``token = (token | quoted-string)``: an auth-param
    rather than a new challenge's scheme or a token68 (which ends in ``=`` without a value)."""
    name = _TOKEN_RE.match(value, pos)
    if name is None:
        return False
    rest = value[name.end() :].lstrip(" \t")
    if not rest.startswith("="):
        return False
    rest = rest[1:].lstrip(" \t")
    return rest.startswith('"') or _TOKEN_RE.match(rest) is not None


def _param_value(value: str, pos: int) -> tuple[str, int]:
    if pos < len(value) and value[pos] == '"':
        out: list[str] = []
        pos += 1
        while pos < len(value) and value[pos] != '"':
            if value[pos] == "\\" and pos + 1 < len(value):
                pos += 1
            out.append(value[pos])
            pos += 1
        return "".join(out), pos + 1
    match = _TOKEN_RE.match(value, pos)
    return (match.group(), match.end()) if match else ("", pos)
