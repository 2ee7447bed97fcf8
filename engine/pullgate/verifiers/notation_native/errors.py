"""What a Notation check raises when a signature does not count, and how reasons are shortened."""

from __future__ import annotations


class NotationProblem(Exception):
    """Why one Notation signature does not count; the message is the reason, one line."""


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
