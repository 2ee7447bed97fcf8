"""Policy documents: load a directory into validated models, or every reason it cannot be."""

from .errors import Issue, Mark, PolicyLoadError
from .loader import ParseCache, fingerprint, load_policy_dir
from .model import (
    Authority,
    Expect,
    Expr,
    ImagePolicy,
    KeyAuthority,
    KeylessAuthority,
    NotationAuthority,
    PolicySet,
    PolicyTest,
    Rule,
    TestCase,
)

__all__ = [
    "Authority",
    "Expect",
    "Expr",
    "ImagePolicy",
    "Issue",
    "KeyAuthority",
    "KeylessAuthority",
    "Mark",
    "NotationAuthority",
    "ParseCache",
    "PolicyLoadError",
    "PolicySet",
    "PolicyTest",
    "Rule",
    "TestCase",
    "fingerprint",
    "load_policy_dir",
]
