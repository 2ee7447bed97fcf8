"""Parse and normalise docker image references.

The grammar is the one of ``github.com/distribution/reference`` (used by docker and containerd)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ registry "/" ] path
    registry   := host [ ":" port ]        host: domain name, IPv4, or bracketed IPv6
    path       := component ( "/" component )*
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex        (sha256, sha384 or sha512, exact lowercase hex)

Normalisation follows docker's ``ParseNormalizedNamed``:

* the first path segment names a registry when it contains ``.`` or ``:``, is ``localhost``, or
  has an upper-case letter; otherwise the image is on Docker Hub (``docker.io``);
* ``index.docker.io`` and ``registry-1.docker.io`` are spelled ``docker.io``, and one-segment
  names on Docker Hub get the ``library/`` namespace (``nginx`` is ``docker.io/library/nginx``);
* registry hosts are lower-cased, since host names are case-insensitive and two spellings of one
  registry must not be two names to a policy.

Unlike ``ParseDockerRef``, a reference with both a tag and a digest keeps both. Every
:class:`ImageRef` is canonical: ``parse_reference(str(ref)) == ref`` always holds, and the
constructor rejects field values that are not in canonical form.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_REGISTRY",
    "DIGEST_HEX_LENGTHS",
    "MAX_INPUT_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_TAG_LENGTH",
    "ImageRef",
    "InvalidReference",
    "parse_digest",
    "parse_reference",
]

DEFAULT_REGISTRY = "docker.io"
"""Registry of names that do not start with one (Docker Hub)."""

MAX_INPUT_LENGTH = 4096
"""Longer input is rejected before any matching (a valid reference is far shorter)."""

MAX_NAME_LENGTH = 255
"""Maximum length of the normalised name ``registry/repository``."""

MAX_TAG_LENGTH = 128

DIGEST_HEX_LENGTHS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}
"""Registered digest algorithms and the exact number of lowercase hex characters of each."""

_DOCKER_HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io"})
_OFFICIAL_NAMESPACE = "library/"
_QUOTE_LIMIT = 100

# Registry: a domain name (components of letters, digits and inner dashes, joined by dots; this
# includes IPv4 in decimal form) or an IPv6 address in brackets, then an optional port.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6_ADDRESS = r"\[[a-fA-F0-9:]+\]"
_HOST_RE = re.compile(rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})")
_PORT_RE = re.compile(r"[0-9]+")
_REGISTRY_RE = re.compile(rf"{_HOST_RE.pattern}(?::[0-9]+)?")

# Repository path component: lowercase alphanumeric runs joined by one '.', one or two '_', or
# any number of '-'.
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")
_PATH_CHARS_RE = re.compile(r"[a-z0-9._-]+")

# re.ASCII: Go's \w is [0-9A-Za-z_], Python's would also accept non-ASCII letters.
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_TAG_CHARS_RE = re.compile(r"[\w.-]+", re.ASCII)

# go-digest's algorithm grammar, and the encoded part of any well-formed digest.
_DIGEST_ALGORITHM_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*")
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+")
_HEX_RE = re.compile(r"[a-fA-F0-9]+")

# An image id: docker refuses a bare 64-hex name as ambiguous with it.
_IMAGE_ID_RE = re.compile(r"[a-f0-9]{64}")

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

_PATH_RULE = (
    "path components are lowercase letters and digits, separated only by '.', '_', '__' or "
    "dashes, and must start and end with a letter or digit"
)
_DIGEST_RULE = "a digest is 'algorithm:hex', e.g. 'sha256:' followed by 64 lowercase hex digits"


class InvalidReference(ValueError):
    """An image reference or digest that cannot be parsed; the message says how to fix it."""


class _RefError(Exception):
    """Internal: what is wrong with one part of the input (wrapped into InvalidReference)."""


def _quote(text: str) -> str:
    """``repr`` of ``text``, truncated so that error messages stay readable."""
    head = text[:_QUOTE_LIMIT]
    quoted = repr(head)
    if len(quoted) > 2 * _QUOTE_LIMIT:  # an escape (\x00, \U0001f600) takes up to 10 characters
        head = head[: _QUOTE_LIMIT // 10]
        quoted = repr(head)
    if len(head) == len(text):
        return quoted
    return f"{quoted}... ({len(text)} characters)"


def _supported_algorithms() -> str:
    return ", ".join(sorted(DIGEST_HEX_LENGTHS))


_PRINTABLE_ASCII = re.compile(r"[!-~]*")


def _check_characters(text: str) -> None:
    if _PRINTABLE_ASCII.fullmatch(text):
        return  # the common case, without a Python loop over every character
    for pos, char in enumerate(text):
        if char.isspace():
            raise _RefError(
                f"whitespace is not allowed (found {char!r} at position {pos}); "
                "remove spaces, tabs and newlines"
            )
        if not ("!" <= char <= "~"):
            raise _RefError(
                f"invalid character {char!r} at position {pos}; "
                "image references consist of printable ASCII characters only"
            )


def _check_digest(text: str) -> None:
    """Raise _RefError unless ``text`` is ``algorithm:hex`` in go-digest's validated form."""
    if text == "":
        raise _RefError(f"the digest is empty; {_DIGEST_RULE}")
    _check_characters(text)
    algorithm, sep, encoded = text.partition(":")
    if not sep or not algorithm:
        raise _RefError(f"the digest has no algorithm; {_DIGEST_RULE}")
    if algorithm not in DIGEST_HEX_LENGTHS:
        if algorithm.lower() in DIGEST_HEX_LENGTHS:
            raise _RefError(
                f"digest algorithm {_quote(algorithm)} must be lowercase: "
                f"write {_quote(algorithm.lower())}"
            )
        what = "unsupported" if _DIGEST_ALGORITHM_RE.fullmatch(algorithm) else "invalid"
        raise _RefError(
            f"{what} digest algorithm {_quote(algorithm)}; supported algorithms: "
            f"{_supported_algorithms()}"
        )
    expected = DIGEST_HEX_LENGTHS[algorithm]
    if encoded == "":
        raise _RefError(
            f"the {algorithm} digest has no hex value after ':'; "
            f"add the {expected} lowercase hex digits"
        )
    if not _HEX_RE.fullmatch(encoded):
        bad = next(c for c in encoded if not _HEX_RE.fullmatch(c))
        raise _RefError(
            f"the {algorithm} digest contains {bad!r}, which is not a hex digit; "
            f"it must be {expected} lowercase hex digits (0-9, a-f)"
        )
    if not _LOWER_HEX_RE.fullmatch(encoded):
        raise _RefError(
            f"the {algorithm} digest hex must be lowercase: write "
            f"{_quote(algorithm + ':' + encoded.lower())}"
        )
    if len(encoded) != expected:
        raise _RefError(
            f"a {algorithm} digest has exactly {expected} hex digits, got {len(encoded)}; "
            "copy the full digest"
        )


def _check_tag(tag: str) -> None:
    if tag == "":
        raise _RefError("the tag after ':' is empty; remove the ':' or add a tag such as 'latest'")
    if len(tag) > MAX_TAG_LENGTH:
        raise _RefError(
            f"the tag is {len(tag)} characters long; tags have at most {MAX_TAG_LENGTH} characters"
        )
    if _TAG_RE.fullmatch(tag):
        return
    if ":" in tag:
        raise _RefError(
            f"invalid tag {tag!r}: a reference has at most one ':' after the repository "
            "(registry ports go before the first '/')"
        )
    if not _TAG_CHARS_RE.fullmatch(tag):
        bad = next(c for c in tag if not _TAG_CHARS_RE.fullmatch(c))
        raise _RefError(
            f"invalid tag {tag!r}: {bad!r} is not allowed; tags use letters, digits, '_', '.' "
            "and '-'"
        )
    raise _RefError(f"invalid tag {tag!r}: a tag must start with a letter, digit or '_'")


def _check_registry(registry: str) -> None:
    """Raise _RefError unless ``registry`` is a host with an optional port (any case)."""
    if _REGISTRY_RE.fullmatch(registry):
        return
    if registry.startswith("["):
        end = registry.find("]")
        if end == -1:
            raise _RefError(
                f"registry {_quote(registry)} has an IPv6 address without the closing ']'"
            )
        host, port_part = registry[: end + 1], registry[end + 1 :]
    elif registry.count(":") > 1:
        raise _RefError(
            f"registry {_quote(registry)} looks like an IPv6 address; "
            "enclose it in brackets, e.g. '[::1]:5000'"
        )
    else:
        host, sep, port = registry.partition(":")
        port_part = sep + port
    if port_part:
        if not port_part.startswith(":"):
            raise _RefError(f"invalid registry {_quote(registry)}: expected ':port' after the host")
        if not _PORT_RE.fullmatch(port_part[1:]):
            raise _RefError(
                f"invalid port {_quote(port_part[1:])} in registry {_quote(registry)}; "
                "the port must be a number, e.g. 'registry.example.com:5000'"
            )
    if not _HOST_RE.fullmatch(host):
        raise _RefError(
            f"invalid registry host {_quote(host)}: a host is a domain name (letters, digits and "
            "inner '-', in non-empty parts separated by single dots), an IPv4 address or a "
            "bracketed IPv6 address"
        )
    raise _RefError(f"invalid registry {_quote(registry)}")  # pragma: no cover - covered above


def _check_path(path: str) -> None:
    """Raise _RefError unless ``path`` is a valid lowercase repository path."""
    for component in path.split("/"):
        if _PATH_COMPONENT_RE.fullmatch(component):
            continue
        if component == "":
            raise _RefError("the repository path has an empty component ('//'); remove the '/'")
        bad = next((c for c in component if not _PATH_CHARS_RE.fullmatch(c)), None)
        if bad is not None:
            raise _RefError(
                f"invalid repository path component {_quote(component)}: {bad!r} is not allowed; "
                f"{_PATH_RULE}"
            )
        raise _RefError(f"invalid repository path component {_quote(component)}: {_PATH_RULE}")


def _is_registry_host(segment: str) -> bool:
    """True when a (lowercased) first segment is unambiguously a registry, not a namespace."""
    return "." in segment or ":" in segment or segment == "localhost"


def _normalise_registry(registry: str) -> str:
    lowered = registry.lower()
    return DEFAULT_REGISTRY if lowered in _DOCKER_HUB_ALIASES else lowered


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalised image reference: ``registry/repository[:tag][@digest]``.

    Instances are always canonical (the constructor validates its fields), so
    ``parse_reference(str(ref)) == ref`` and equal images compare equal.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        for field_name in ("registry", "repository"):
            if not isinstance(getattr(self, field_name), str):
                raise TypeError(f"ImageRef.{field_name} must be a str")
        for field_name in ("tag", "digest"):
            value = getattr(self, field_name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"ImageRef.{field_name} must be a str or None")
        try:
            self._validate()
        except _RefError as exc:
            raise InvalidReference(
                f"invalid ImageRef(registry={_quote(self.registry)}, "
                f"repository={_quote(self.repository)}, "
                f"tag={None if self.tag is None else _quote(self.tag)}, "
                f"digest={None if self.digest is None else _quote(self.digest)}): {exc}"
            ) from None

    def _validate(self) -> None:
        registry, repository = self.registry, self.repository
        if registry == "":
            raise _RefError(f"the registry is empty; use {DEFAULT_REGISTRY!r} for Docker Hub")
        _check_characters(registry)
        _check_registry(registry)
        canonical = _normalise_registry(registry)
        if canonical != registry:
            raise _RefError(f"the registry must be written in canonical form {_quote(canonical)}")
        if not _is_registry_host(registry):
            raise _RefError(
                f"registry {_quote(registry)} has no '.' or ':port' and is not 'localhost', so its "
                "name would read as a Docker Hub namespace; use a fully-qualified host"
            )
        if repository == "":
            raise _RefError("the repository is empty")
        _check_characters(repository)
        if repository != repository.lower():
            raise _RefError(
                f"repository names must be lowercase: did you mean {_quote(repository.lower())}?"
            )
        _check_path(repository)
        if registry == DEFAULT_REGISTRY and "/" not in repository:
            raise _RefError(
                "Docker Hub repositories have a namespace: did you mean "
                f"{_quote(_OFFICIAL_NAMESPACE + repository)}?"
            )
        name_length = len(registry) + 1 + len(repository)
        if name_length > MAX_NAME_LENGTH:
            raise _RefError(
                f"the name registry/repository is {name_length} characters long; "
                f"the maximum is {MAX_NAME_LENGTH}"
            )
        if self.tag is not None:
            _check_characters(self.tag)
            _check_tag(self.tag)
        if self.digest is not None:
            _check_digest(self.digest)

    @property
    def name(self) -> str:
        """The normalised name ``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def effective_tag(self) -> str:
        """The tag a pull resolves: the tag, ``"latest"`` by default, ``""`` for digest-only."""
        if self.tag is not None:
            return self.tag
        return "" if self.digest is not None else "latest"

    def with_digest(self, digest: str) -> ImageRef:
        """A copy pinned to ``digest`` (validated like :func:`parse_digest`); the tag is kept."""
        return replace(self, digest=parse_digest(digest))

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_digest(text: str) -> str:
    """Validate a digest ``algorithm:hex`` and return it.

    The algorithm must be one of :data:`DIGEST_HEX_LENGTHS` and the hex part exactly as long as
    that algorithm's output, in lowercase (go-digest's ``Digest.Validate``).
    """
    if not isinstance(text, str):
        raise TypeError(f"a digest must be a str, not {type(text).__name__}")
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidReference(
            f"invalid digest {_quote(text)}: it is {len(text)} characters long; {_DIGEST_RULE}"
        )
    try:
        _check_digest(text)
    except _RefError as exc:
        raise InvalidReference(f"invalid digest {_quote(text)}: {exc}") from None
    return text


def parse_reference(text: str) -> ImageRef:
    """Parse an image reference such as ``nginx:1.25`` into its normalised :class:`ImageRef`.

    Raises :class:`InvalidReference` (a ``ValueError``) with a message that quotes the input and
    says what to change, and ``TypeError`` when ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"an image reference must be a str, not {type(text).__name__}")
    return _parse_cached(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> ImageRef:
    """A node pulls the same few names again and again; ImageRef is immutable."""
    try:
        return _parse(text)
    except _RefError as exc:
        raise InvalidReference(f"invalid image reference {_quote(text)}: {exc}") from None


def _check_input(text: str) -> None:
    if text == "":
        raise _RefError("the reference is empty; give an image name such as 'nginx:1.25'")
    if len(text) > MAX_INPUT_LENGTH:
        raise _RefError(
            f"it is {len(text)} characters long, more than the {MAX_INPUT_LENGTH} accepted"
        )
    _check_characters(text)
    scheme = _SCHEME_RE.match(text)
    if scheme:
        raise _RefError(
            f"image references have no URL scheme; drop the scheme {_quote(scheme.group())} "
            f"and write {_quote(text[scheme.end() :])}"
        )


def _split(text: str) -> tuple[str, str | None, str | None]:
    """Split ``name[:tag][@digest]``: the digest follows '@', the tag a ':' after the last '/'."""
    remainder, at, digest = text.partition("@")
    if "@" in digest:
        raise _RefError("more than one '@'; a reference has at most one digest")
    name, tag = remainder, None
    tag_start = remainder.find(":", remainder.rfind("/") + 1)
    if tag_start != -1:
        name, tag = remainder[:tag_start], remainder[tag_start + 1 :]
    if name == "":
        before = "':'" if tag is not None else "'@'" if at else "the reference"
        raise _RefError(f"the repository name before {before} is missing, e.g. 'nginx'")
    if name.startswith("/"):
        raise _RefError("the name starts with '/'; remove the leading '/'")
    if name.endswith("/"):
        raise _RefError("the name ends with '/'; remove the trailing '/' or add the image name")
    if "//" in name:
        raise _RefError("the name contains '//' (an empty path component); remove the extra '/'")
    return name, tag, digest if at else None


def _split_name(text: str, name: str) -> tuple[str, str]:
    """Split ``name`` (the start of ``text``) into a normalised registry and a checked path."""
    # Does the first segment name a registry? (distribution's splitDockerDomain)
    first, slash, rest = name.partition("/")
    if slash and (_is_registry_host(first) or first != first.lower()):
        _check_registry(first)
        registry, path, path_start = _normalise_registry(first), rest, len(first) + 1
        if not _is_registry_host(registry):
            # Upper case made it a registry, but lowercased it would read as a Docker Hub
            # namespace: there is no canonical spelling, and the user most likely meant Hub.
            suggestion = name.lower() + text[len(name) :]
            raise _RefError(
                f"repository names must be lowercase: did you mean {_quote(suggestion)}? "
                f"({_quote(first)} is not a registry host: it has no '.' or ':port' and is not "
                "'localhost')"
            )
    else:
        registry, path, path_start = DEFAULT_REGISTRY, name, 0
        if _IMAGE_ID_RE.fullmatch(name):
            raise _RefError(
                "a 64-character hexadecimal repository name is ambiguous with an image id and "
                "docker refuses it; use a different name or add a namespace or registry"
            )
    if path != path.lower():
        suggestion = text[:path_start] + path.lower() + text[len(name) :]
        raise _RefError(f"repository names must be lowercase: did you mean {_quote(suggestion)}?")
    _check_path(path)
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = _OFFICIAL_NAMESPACE + path
    name_length = len(registry) + 1 + len(path)
    if name_length > MAX_NAME_LENGTH:
        raise _RefError(
            f"the normalised name {_quote(registry + '/' + path)} is {name_length} characters "
            f"long; names have at most {MAX_NAME_LENGTH} characters"
        )
    return registry, path


def _parse(text: str) -> ImageRef:
    _check_input(text)
    name, tag, digest = _split(text)
    registry, repository = _split_name(text, name)
    if tag is not None:
        _check_tag(tag)
    if digest is not None:
        _check_digest(digest)
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)
