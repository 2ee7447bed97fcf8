"""Globs, table-driven: image globs (``*`` one segment, ``**`` any depth, ``?`` one character,
anchored at both ends, literal everywhere else), namespace globs, the ``text`` kind behind the
CEL ``glob`` function, the literal ``prefix`` the selection index uses, every invalid pattern
with its message, and matching that stays linear whatever the pattern."""

from __future__ import annotations

import pytest

from pullgate.globs import Glob, GlobError, compile_glob, glob_match

# (id, pattern, name, expected) over normalised image names "registry/repository".
IMAGE_ROWS = [
    # -- * is exactly one path segment, and globs are anchored at both ends ----------------
    ("star-one-segment", "ghcr.io/acme/*", "ghcr.io/acme/app", True),
    ("star-not-prefix-lookalike", "ghcr.io/acme/*", "ghcr.io/acme-evil/x", False),
    ("star-not-two-segments", "ghcr.io/acme/*", "ghcr.io/acme/a/b", False),
    ("star-not-parent", "ghcr.io/acme/*", "ghcr.io/acme", False),
    ("star-anchored-at-start", "ghcr.io/acme/*", "evil.io/ghcr.io/acme/app", False),
    ("literal-anchored-at-end", "ghcr.io/acme/app", "ghcr.io/acme/app-evil", False),
    ("literal-exact", "ghcr.io/acme/app", "ghcr.io/acme/app", True),
    ("star-inside-segment", "ghcr.io/*-app", "ghcr.io/my-app", True),
    ("star-inside-not-across-slash", "ghcr.io/*-app", "ghcr.io/my/x-app", False),
    ("star-matches-empty-rest", "ghcr.io/app-*", "ghcr.io/app-", True),
    ("star-not-other-start", "ghcr.io/app-*", "ghcr.io/xapp-1", False),
    # -- ** spans any depth, as a whole segment ------------------------------------------------
    ("deep-end-one", "quay.io/team/**", "quay.io/team/a", True),
    ("deep-end-many", "quay.io/team/**", "quay.io/team/a/b/c", True),
    ("deep-end-not-parent", "quay.io/team/**", "quay.io/team", False),
    ("deep-end-not-lookalike", "quay.io/team/**", "quay.io/teams/a", False),
    ("deep-middle-zero", "registry.example.com/**/app", "registry.example.com/app", True),
    ("deep-middle-many", "registry.example.com/**/app", "registry.example.com/x/y/app", True),
    ("deep-middle-whole-segment", "reg.example.com/**/app", "reg.example.com/x/bapp", False),
    ("deep-middle-anchored-end", "reg.example.com/**/app", "reg.example.com/app/x", False),
    ("deep-alone-anything", "**", "docker.io/library/nginx", True),
    ("deep-alone-deeper", "**", "registry.example.com:5000/a/b/c/d", True),
    ("deep-start-zero", "**/tools/kubectl", "tools/kubectl", True),
    ("deep-start-many", "**/tools/kubectl", "ghcr.io/acme/tools/kubectl", True),
    ("deep-start-whole-segment", "**/tools/kubectl", "ghcr.io/mytools/kubectl", False),
    ("deep-both-ends", "**/vendor/**", "ghcr.io/acme/vendor/x/y", True),
    ("deep-both-ends-needs-tail", "**/vendor/**", "ghcr.io/acme/vendor", False),
    ("star-then-deep", "*/acme/**", "quay.io/acme/a/b", True),
    # -- ? is one character other than "/" -----------------------------------------------------
    ("question-one-char", "ghcr.io/proj/v?", "ghcr.io/proj/v1", True),
    ("question-not-two", "ghcr.io/proj/v?", "ghcr.io/proj/v10", False),
    ("question-not-zero", "ghcr.io/proj/v?", "ghcr.io/proj/v", False),
    ("question-not-slash", "ghcr.io/a?b", "ghcr.io/a/b", False),
    # -- registry wildcards, ports, IPv6 ---------------------------------------------------------
    ("any-registry", "*/library/nginx", "docker.io/library/nginx", True),
    ("any-registry-other", "*/library/nginx", "quay.io/library/nginx", True),
    ("any-registry-one-segment", "*/library/nginx", "a.io/b/library/nginx", False),
    ("any-registry-anchored", "*/library/nginx", "docker.io/library/nginx-unprivileged", False),
    ("registry-subdomain", "*.example.com/app", "registry.example.com/app", True),
    ("registry-subdomain-needs-dot", "*.example.com/app", "evilexample.com/app", False),
    ("registry-subdomain-not-path", "*.example.com/app", "evil.io/x.example.com/app", False),
    ("port", "localhost:5000/dev/*", "localhost:5000/dev/app", True),
    ("port-other", "localhost:5000/dev/*", "localhost:5001/dev/app", False),
    ("port-wildcard", "localhost:*/dev/*", "localhost:5001/dev/app", True),
    ("port-not-in-bare-host", "ghcr.io/*", "ghcr.io:443/acme", False),
    ("ipv6", "[::1]:5000/app", "[::1]:5000/app", True),
    ("ipv6-other-host", "[::1]:5000/app", "[::2]:5000/app", False),
    ("ipv6-deep", "[2001:db8::1]/**", "[2001:db8::1]/team/app", True),
    ("ipv6-brackets-literal", "[::1]/app", "1/app", False),
    ("ipv6-brackets-literal-colon", "[::1]/app", ":/app", False),
    # -- everything but the wildcards is literal --------------------------------------------------
    ("dot-literal", "ghcr.io/a.b", "ghcr.io/axb", False),
    ("dot-literal-host", "ghcr.io/app", "ghcrxio/app", False),
    ("dot-literal-match", "ghcr.io/a.b", "ghcr.io/a.b", True),
    ("dash-underscore-literal", "ghcr.io/a-b_c", "ghcr.io/a-b_c", True),
    ("colon-literal", "ghcr.io/a:b", "ghcr.io/a:b", True),
]

NAMESPACE_ROWS = [
    ("ns-glob", "prod-*", "prod-eu", True),
    ("ns-glob-needs-dash", "prod-*", "production", False),
    ("ns-glob-not-bare", "prod-*", "prod", False),
    ("ns-glob-anchored-start", "prod-*", "xprod-eu", False),
    ("ns-exact", "payments", "payments", True),
    ("ns-exact-anchored-end", "payments", "payments-2", False),
    ("ns-question", "team-?", "team-a", True),
    ("ns-question-one-char", "team-?", "team-ab", False),
    ("ns-star-any", "*", "default", True),
    ("ns-deep-any", "**", "kube-system", True),
    ("ns-inner-star", "*-prod", "eu-prod", True),
]

# The CEL glob function: any string, "**" may sit inside a segment, upper case is allowed, and
# characters that are regex syntax stay literal.
TEXT_ROWS = [
    ("text-star", "v*", "v1.2.3", True),
    ("text-star-one-segment", "a*c", "a/b/c", False),
    ("text-deep-in-segment", "a**c", "a/b/c", True),
    ("text-deep-in-segment-zero", "v**", "v", True),
    ("text-upper-case", "Release-*", "Release-1", True),
    ("text-case-sensitive", "Release-*", "release-1", False),
    ("text-url", "https://github.com/acme/**", "https://github.com/acme/app/.github/x.yml", True),
    ("text-url-other-org", "https://github.com/acme/**", "https://github.com/acme-evil/app", False),
    ("text-ref", "*@refs/tags/v*", "release.yml@refs/tags/v1.0", True),
    ("text-dot-literal", "a.b", "axb", False),
    ("text-plus-literal", "a+b", "a+b", True),
    ("text-plus-not-repetition", "a+b", "aab", False),
    ("text-paren-literal", "f(x)", "f(x)", True),
    ("text-paren-not-group", "f(x)", "fx", False),
    ("text-pipe-not-alternation", "a|b", "a", False),
    ("text-brackets-not-class", "[ab]", "a", False),
    ("text-brackets-literal", "[ab]", "[ab]", True),
    ("text-dollar-literal", "a$", "a$", True),
    ("text-backslash-literal", "a\\d", "a1", False),
    ("text-question", "a?c", "abc", True),
    ("text-question-not-slash", "a?c", "a/c", False),
    ("text-anchored", "acme", "acme-evil", False),
]

# (id, pattern, kind, message fragments)
INVALID = [
    ("empty", "", "image", ["must be a non-empty string, got ''"]),
    ("not-a-string", None, "image", ["must be a non-empty string, got None"]),
    ("leading-space", " ghcr.io/x", "image", ["leading or trailing whitespace"]),
    ("trailing-space", "ghcr.io/x ", "image", ["leading or trailing whitespace"]),
    ("upper-case", "GHCR.io/acme/*", "image", ["upper-case letters", "write 'ghcr.io/acme/*'"]),
    ("empty-segment", "ghcr.io//x", "image", ["empty path segment"]),
    ("leading-slash", "/ghcr.io/x", "image", ["empty path segment"]),
    ("trailing-slash", "ghcr.io/acme/", "image", ["empty path segment"]),
    ("deep-inside-segment", "ghcr.io/acme/app**", "image", ["'**' must be a whole path segment"]),
    ("deep-prefix-in-segment", "ghcr.io/**app", "image", ["'**' must be a whole path segment"]),
    ("triple-star", "ghcr.io/***", "image", ["'**' must be a whole path segment"]),
    ("repeated-deep", "ghcr.io/**/**/app", "image", ["repeats '**'"]),
    ("repeated-deep-alone", "**/**", "image", ["repeats '**'"]),
    ("plus", "ghcr.io/a+b", "image", ["never occur in images: '+'"]),
    ("paren", "ghcr.io/a(b", "image", ["never occur in images: '('"]),
    ("braces", "ghcr.io/a{2}", "image", ["never occur in images: '{}'"]),
    ("at-sign", "ghcr.io/app@sha256", "image", ["never occur in images: '@'"]),
    ("non-ascii", "ghcr.io/caf\u00e9", "image", ["never occur in images"]),
    (
        "no-registry",
        "nginx",
        "image",
        ["does not start with a registry", "write 'docker.io/library/nginx'"],
    ),
    ("no-registry-namespace", "library/nginx", "image", ["write 'docker.io/library/nginx'"]),
    ("no-registry-user", "acme/app", "image", ["write 'docker.io/acme/app'"]),
    ("brackets-outside-host", "ghcr.io/a[b]", "image", ["brackets only occur in IPv6"]),
    ("ns-upper-case", "Prod-*", "namespace", ["upper-case letters", "write 'prod-*'"]),
    ("ns-slash", "prod/*", "namespace", ["never occur in namespaces: '/'"]),
    ("ns-underscore", "prod_*", "namespace", ["never occur in namespaces: '_'"]),
    ("ns-dot", "prod.*", "namespace", ["never occur in namespaces: '.'"]),
    ("ns-empty", "", "namespace", ["namespace glob must be a non-empty string"]),
    ("ns-deep-in-segment", "prod**", "namespace", ["'**' must be a whole path segment"]),
]

PREFIXES = [
    ("ghcr.io/acme/*", "image", ("ghcr.io", "acme")),
    ("ghcr.io/acme/app", "image", ("ghcr.io", "acme", "app")),
    ("ghcr.io/acme/**", "image", ("ghcr.io", "acme")),
    ("ghcr.io/a*/b", "image", ("ghcr.io",)),
    ("ghcr.io/**/app", "image", ("ghcr.io",)),
    ("**", "image", ()),
    ("*/library/nginx", "image", ()),
    ("*.example.com/app", "image", ()),
    ("localhost:5000/dev/v?", "image", ("localhost:5000", "dev")),
    ("[::1]:5000/app", "image", ("[::1]:5000", "app")),
    ("payments", "namespace", ("payments",)),
    ("prod-*", "namespace", ()),
]


def test_the_tables_are_big_enough() -> None:
    assert len(IMAGE_ROWS) + len(NAMESPACE_ROWS) + len(TEXT_ROWS) >= 40
    ids = [r[0] for r in IMAGE_ROWS + NAMESPACE_ROWS + TEXT_ROWS] + [r[0] for r in INVALID]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [r[1:] for r in IMAGE_ROWS],
    ids=[r[0] for r in IMAGE_ROWS],
)
def test_image_glob(pattern: str, name: str, expected: bool) -> None:
    assert compile_glob(pattern).match(name) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [r[1:] for r in NAMESPACE_ROWS],
    ids=[r[0] for r in NAMESPACE_ROWS],
)
def test_namespace_glob(pattern: str, name: str, expected: bool) -> None:
    assert compile_glob(pattern, kind="namespace").match(name) is expected


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [r[1:] for r in TEXT_ROWS],
    ids=[r[0] for r in TEXT_ROWS],
)
def test_text_glob(pattern: str, text: str, expected: bool) -> None:
    assert compile_glob(pattern, kind="text").match(text) is expected
    assert glob_match(text, pattern) is expected  # the cached path the CEL function takes


@pytest.mark.parametrize(
    ("pattern", "kind", "fragments"),
    [r[1:] for r in INVALID],
    ids=[r[0] for r in INVALID],
)
def test_invalid_glob(pattern: str, kind: str, fragments: list[str]) -> None:
    with pytest.raises(GlobError) as info:
        compile_glob(pattern, kind=kind)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_glob_error_is_a_value_error() -> None:
    assert issubclass(GlobError, ValueError)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown glob kind 'regex'"):
        compile_glob("ghcr.io/*", kind="regex")


@pytest.mark.parametrize("pattern", ["GHCR.io/**", "a**b", "a//b", " x ", "f(x)+"])
def test_text_kind_accepts_what_image_globs_refuse(pattern: str) -> None:
    assert compile_glob(pattern, kind="text").pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "kind", "prefix"), PREFIXES, ids=[f"{k}:{p}" for p, k, _ in PREFIXES]
)
def test_prefix_is_the_leading_literal_segments(
    pattern: str, kind: str, prefix: tuple[str, ...]
) -> None:
    glob = compile_glob(pattern, kind=kind)
    assert glob.prefix == prefix
    assert glob.pattern == pattern


def test_globs_compare_by_pattern() -> None:
    a, b = compile_glob("ghcr.io/acme/*"), compile_glob("ghcr.io/acme/*")
    assert isinstance(a, Glob)
    assert a == b and a is not b
    assert "_regex" not in repr(a)


# A naive backtracking translation (each "*" as ".*" or "[^/]*") tries every way to place the
# 30 "a"s among the 200 in the name before failing: C(200, 30) > 10**35 steps. RE2 is linear.
PATHOLOGICAL_NAME = "ghcr.io/" + "a" * 200 + "b"


def test_matching_is_linear_for_image_globs() -> None:
    glob = compile_glob("ghcr.io/" + "*a" * 30)
    assert glob.match(PATHOLOGICAL_NAME) is False
    assert glob.match("ghcr.io/" + "a" * 200) is True


def test_matching_is_linear_for_text_globs() -> None:
    text = "x/" + "a" * 5000 + "b"
    assert glob_match(text, "x/" + "**a" * 30) is False
    assert glob_match(text, "x/" + "?*a" * 30) is False
    assert glob_match(text + "a", "x/" + "**a" * 30) is True


def test_matching_is_linear_for_namespace_globs() -> None:
    glob = compile_glob("*a" * 30, kind="namespace")
    assert glob.match("a" * 62 + "b") is False
