"""Read manifests, blobs and referrers from OCI registries (the distribution API, read-only).

Every verifier needs the same few reads: a manifest by tag or digest, a blob, and the artifacts
that refer to an image (signatures, attestations). This package does them with the checks a
verifier cannot skip: every body is bounded before it is read, every digest-addressed body is
hashed and compared, and credentials never leave the host they belong to.

Import from here. :mod:`.client` holds :class:`RegistryClient`, :mod:`.transport` the network
seam, :mod:`.credentials` docker's ``config.json`` and credential helpers, :mod:`.challenges`
the ``WWW-Authenticate`` parser and :mod:`.errors` what they all raise.
"""

from __future__ import annotations

from .challenges import Challenge, parse_challenges
from .client import DOCKER_HUB_API as DOCKER_HUB_API
from .client import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    RegistryClient,
)
from .client import INDEX_TYPES as INDEX_TYPES
from .client import MAX_REDIRECTS as MAX_REDIRECTS
from .client import MAX_REFERRER_PAGES as MAX_REFERRER_PAGES
from .credentials import DOCKER_HUB as DOCKER_HUB
from .credentials import DOCKER_HUB_CONFIG_KEY as DOCKER_HUB_CONFIG_KEY
from .credentials import IDENTITY_TOKEN_USER as IDENTITY_TOKEN_USER
from .credentials import Credentials, CredentialStore, DockerConfig
from .credentials import default_docker_config as default_docker_config
from .errors import (
    BadReference,
    BadResponse,
    DigestMismatch,
    NotFound,
    RegistryError,
    TooLarge,
    Unauthorized,
    Unreachable,
)
from .transport import Response, Transport, Urllib3Transport

# The names that ``from pullgate.registry import *`` gives, as before the split; the constants
# imported ``as`` themselves above are re-exported too, but were never part of it.
__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "BadReference",
    "BadResponse",
    "Challenge",
    "CredentialStore",
    "Credentials",
    "DigestMismatch",
    "DockerConfig",
    "Manifest",
    "NotFound",
    "RegistryClient",
    "RegistryError",
    "Response",
    "TooLarge",
    "Transport",
    "Unauthorized",
    "Unreachable",
    "Urllib3Transport",
    "parse_challenges",
]
