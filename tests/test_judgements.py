"""The judgement cache: what hits, what misses, and how a hit is reported."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conftest import compile_dir, doc, key, verifiers, write_files
from pullgate.decide import Decider
from pullgate.judgements import JudgementCache
from pullgate.request import Descriptor, Request
from pullgate.rules import CompiledPolicySet

D = "sha256:" + "9" * 64


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def policies(tmp_path: Path) -> CompiledPolicySet:
    text = doc("signed", f'  images: ["ghcr.io/**"]\n  authorities:{key("release")}\n')
    return compile_dir(write_files(tmp_path, {"p.yaml": text}))


def setup(clock: Clock, ttl: float = 5.0) -> tuple[Decider, list, object]:
    vs = verifiers({"release": True})
    logged: list = []
    decider = Decider(vs, judgements=JudgementCache(ttl, clock=clock), log=logged.append)
    return decider, logged, vs.for_kind("key")


BASE = Request("ghcr.io/acme/app:1", Descriptor(digest=D))


def test_a_repeat_is_answered_from_the_cache(policies) -> None:
    clock = Clock()
    decider, logged, double = setup(clock)
    first = decider.decide(policies, BASE)
    second = decider.decide(policies, BASE)
    assert (first.ok, second.ok) == (True, True)
    assert not first.cached and second.cached
    assert second.decision_id != first.decision_id and second.reason == first.reason
    assert len(double.calls) == 1  # no second verification
    assert [j.cached for j in logged] == [False, True]  # every decision is still logged


@pytest.mark.parametrize(
    "change",
    [
        {"descriptor": Descriptor(digest="sha256:" + "8" * 64)},
        {"image_name": "ghcr.io/acme/app:2"},
        {"namespace": "prod"},
        {"operation": "run"},
        {"labels": {"team": "a"}},
        {"annotations": {"x": "y"}},
        {"pod_name": "api-0"},
        {"descriptor": Descriptor(digest=D, annotations={"a": "b"})},
    ],
)
def test_any_request_field_is_part_of_the_key(policies, change) -> None:
    decider, _, double = setup(Clock())
    decider.decide(policies, BASE)
    assert not decider.decide(policies, replace(BASE, **change)).cached
    assert len(double.calls) == 2


def test_a_new_revision_misses(policies, tmp_path: Path) -> None:
    decider, _, _ = setup(Clock())
    decider.decide(policies, BASE)
    other = compile_dir(
        write_files(tmp_path / "v2", {"p.yaml": doc("open", '  images: ["ghcr.io/**"]\n')})
    )
    j = decider.decide(other, BASE)
    assert not j.cached and j.policy_revision == other.revision


def test_entries_expire(policies) -> None:
    clock = Clock()
    decider, _, _ = setup(clock, ttl=5)
    decider.decide(policies, BASE)
    clock.now = 4.9
    assert decider.decide(policies, BASE).cached
    clock.now = 5.1
    assert not decider.decide(policies, BASE).cached


def test_ttl_zero_turns_it_off(policies) -> None:
    decider, _, double = setup(Clock(), ttl=0)
    decider.decide(policies, BASE)
    assert not decider.decide(policies, BASE).cached and len(double.calls) == 2


def test_an_explicit_clock_bypasses_the_cache(policies) -> None:
    from datetime import UTC, datetime

    decider, _, _ = setup(Clock())
    decider.decide(policies, BASE)
    assert not decider.decide(policies, BASE, now=datetime.now(UTC)).cached
