"""Coverage-guided fuzzing of image references with atheris (libFuzzer), run as a program:

    python tests/fuzz/atheris_reference.py -runs=10000 [corpus dir]

Every input is decoded as text and parsed: anything but an ImageRef or InvalidReference, or a
parsed reference that does not round-trip, is a crash libFuzzer reports (exit code non-zero).
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from pullgate.reference import InvalidReference, parse_digest, parse_reference


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 600))
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        if not str(exc) or len(str(exc)) > 2000:
            raise AssertionError(f"unreadable message for {text!r}: {str(exc)[:200]}") from None
    else:
        if parse_reference(str(ref)) != ref:
            raise AssertionError(f"{text!r} does not round-trip: {ref}")
    with contextlib.suppress(InvalidReference):
        parse_digest(text)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
