"""Image references: anything parses to a canonical ImageRef or raises InvalidReference."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pullgate.reference import (
    DIGEST_HEX_LENGTHS,
    MAX_NAME_LENGTH,
    ImageRef,
    InvalidReference,
    parse_digest,
    parse_reference,
)

from .conftest import FUZZ, scaled
from .strategies import digest, mutated, references

pytestmark = pytest.mark.slow  # 10,000 examples a target: more than 10 s


# Independent of reference.py's own expressions: the grammar of docs/policies.md.
HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[a-f0-9:]+\])(?::[0-9]+)?"
)
PATH = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_MESSAGE = 2000  # bounded whatever the input: each quoted part is cut


def _checked_error(exc: InvalidReference) -> None:
    message = str(exc)
    assert message, "an empty error message helps nobody"
    assert "\n" not in message
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:200]}"


def _canonical(ref: ImageRef) -> None:
    assert HOST.fullmatch(ref.registry), ref
    assert PATH.fullmatch(ref.repository), ref
    assert len(ref.name) <= MAX_NAME_LENGTH
    assert ref.tag is None or TAG.fullmatch(ref.tag)
    if ref.digest is not None:
        algorithm, _, hex_part = ref.digest.partition(":")
        assert len(hex_part) == DIGEST_HEX_LENGTHS[algorithm]
    assert parse_reference(str(ref)) == ref  # round trip
    assert str(parse_reference(str(ref))) == str(ref)
    assert ImageRef(ref.registry, ref.repository, ref.tag, ref.digest) == ref


@FUZZ
@given(references)
@example("")
@example("a" * 5000)
@example("docker.io/" + "a/" * 2000 + "a")
@example("a/" + "b" * 4000)
@example("x.io/" + "a-" * 1500 + "a")
@example("x.io/a:" + "t" * 3000)
def test_parse_reference_never_raises_anything_else(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        _checked_error(exc)
        return
    _canonical(ref)
    if "@" in text:
        assert ref.digest == text.rpartition("@")[2]
    # Parsing never invents a tag or digest that is not in the text.
    if ref.tag is not None:
        assert ":" + ref.tag in text
    if ref.digest is not None:
        assert ref.digest in text


@scaled(0.3, minimum=300)
@given(st.one_of(digest, mutated(digest), st.text(max_size=200)))
def test_parse_digest_is_exact_or_typed_error(text: str) -> None:
    try:
        assert parse_digest(text) == text
    except InvalidReference as exc:
        _checked_error(exc)
        return
    algorithm, _, hex_part = text.partition(":")
    assert len(hex_part) == DIGEST_HEX_LENGTHS[algorithm]
    assert set(hex_part) <= set("0123456789abcdef")


field = st.one_of(
    st.none(),
    st.text(max_size=30),
    mutated(
        st.sampled_from(
            ["ghcr.io", "docker.io", "library/nginx", "a/b", "v1", "sha256:" + "a" * 64]
        )
    ),
)


@scaled(0.2, minimum=200)
@given(
    st.text(max_size=30) | mutated(st.just("ghcr.io")),
    st.text(max_size=30) | mutated(st.just("acme/app")),
    field,
    field,
)
def test_image_ref_fields_are_canonical_or_refused(
    registry: str, repository: str, tag: str | None, digest_text: str | None
) -> None:
    try:
        ref = ImageRef(registry, repository, tag, digest_text)
    except InvalidReference as exc:
        _checked_error(exc)
        return
    _canonical(ref)
