"""Notation (Notary Project) signatures, verified natively: no ``notation`` binary, no plugins.

A Notation signature is an OCI manifest that refers to the image (artifact type
``application/vnd.cncf.notary.signature``) with one layer: a JWS (``application/jose+json``) or
COSE_Sign1 (``application/cose``) envelope. It signs a payload whose ``targetArtifact`` is the
image's descriptor.

Each envelope goes through Notation's checks in Notation's order (notation-go's verifier and the
Notary Project specification), each enforced or only logged as the authority's level says:

    level        integrity  authenticity  authenticTimestamp  expiry    revocation
    strict       enforced   enforced      enforced            enforced  enforced
    permissive   enforced   enforced      logged              logged    logged
    audit        enforced   logged        logged              logged    logged

A logged failure does not stop the signature from counting; it comes back as a warning worded
as ``notation verify`` prints it (``expiry was set to "log" and failed with error: ...``).
Reasons use notation's wording where notation has one, with certificate names written as Go
writes them, so they can be compared with the CLI's.

1. integrity: strict base64url (JWS) or CBOR (COSE) structure; protected headers ``alg``
   (PS256/384/512, ES256/384/512, and it must be the one the signing key's type and size
   dictate), ``cty`` ``application/vnd.cncf.notary.payload.v1+json``, ``crit`` (the headers
   Notation requires to be critical must be listed; every listed header must be present and
   understood), signing scheme ``notary.x509`` (with ``io.cncf.notary.signingTime``) or
   ``notary.x509.signingAuthority`` (with ``io.cncf.notary.authenticSigningTime``), optional
   ``io.cncf.notary.expiry`` after the signing time; the signature over the JWS signing input or
   the COSE ``Sig_structure`` with the leaf key (RSA-PSS with ``salt_length=PSS.AUTO``, ECDSA
   with raw ``r||s``); the certificate chain in the *unprotected* header, checked by hand as
   notation-core-go does: leaf first, each certificate issued by the next (names and signature,
   no SHA-1), ending at a self-signed root, leaf and CA key usage, basic constraints and path
   length; the payload parses.
2. A critical ``io.cncf.notary.verificationPlugin`` header fails closed at every level: pullgate
   runs no plugins, and skipping what a plugin would check is what the specification forbids.
3. authenticity: some certificate of the chain *is* (DER-equal to) a certificate of the
   authority's trust store, whose type matches the scheme (``ca`` for ``notary.x509``,
   ``signingAuthority`` for ``notary.x509.signingAuthority``): a trust store certificate with the
   same key but another body does not count, as with notation. Then the trusted identities:
   ``*``, or the leaf subject holds every RDN of one ``x509.subject`` entry (Notation's subset
   match; attribute types compared case-insensitively).
4. expiry: the signer's ``io.cncf.notary.expiry`` has not passed at ``now``.
5. authenticTimestamp: without a TSA trust store (a Notation authority here has none) every
   certificate of the chain must be valid at ``now`` for ``notary.x509``, and at the authentic
   signing time for ``notary.x509.signingAuthority``. RFC 3161 timestamps are not verified: a
   certificate that expired before ``now`` fails even when the envelope carries a timestamp, and
   the reason says so.
6. revocation: a certificate below the root that names a CRL distribution point or an OCSP
   responder cannot be checked natively (fails where enforced); one that names neither is not
   revocable and passes, as in notation-go.
7. The payload's ``targetArtifact`` media type, digest and size equal the image's descriptor,
   always (a signature moved onto another image fails).

Stricter than notation-go, as the specification asks: an unknown critical header fails (notation
-go only checks that it is present), a leaf whose extended key usage allows anything fails, and
chains longer than 16 certificates are refused.

Level ``skip`` never verifies: Notation would accept the image without looking at a signature,
but an authority that checks nothing proves nothing, so pullgate reports it unverified (a
deliberate difference from ``notation verify``, which exits 0).

The ``signingTime`` of a ``notary.x509`` signature is only the signer's claim: it goes into the
signature's annotations, never into ``signed_at``.

Import from here. :mod:`.verifier` holds :class:`NotationNativeVerifier` (registry reads,
signature selection, reasons), :mod:`.verify` :func:`verify_envelope` (the checks above in order),
:mod:`.levels` what each level enforces or logs, :mod:`.envelope` what both envelope forms carry,
with :mod:`.jws` and :mod:`.cose` parsing each, :mod:`.chain` the certificate chain, trust store,
validity and revocation markers, :mod:`.trusted_identities` the ``x509.subject`` match,
:mod:`.payload` the signed target descriptor, :mod:`.goformat` names and times written as Go
writes them, and :mod:`.errors` what they all raise.
"""

from __future__ import annotations

from .envelope import AUTHENTIC_SIGNING_TIME as AUTHENTIC_SIGNING_TIME
from .envelope import COSE, JWS, PAYLOAD_TYPE
from .envelope import EXPIRY as EXPIRY
from .envelope import MAX_CHAIN as MAX_CHAIN
from .envelope import SCHEME_SIGNING_AUTHORITY as SCHEME_SIGNING_AUTHORITY
from .envelope import SCHEME_X509 as SCHEME_X509
from .envelope import SIGNING_AGENT as SIGNING_AGENT
from .envelope import SIGNING_SCHEME as SIGNING_SCHEME
from .envelope import SIGNING_TIME as SIGNING_TIME
from .envelope import TIMESTAMP_SIGNATURE as TIMESTAMP_SIGNATURE
from .envelope import VERIFICATION_PLUGIN as VERIFICATION_PLUGIN
from .envelope import VERIFICATION_PLUGIN_MIN_VERSION as VERIFICATION_PLUGIN_MIN_VERSION
from .errors import NotationProblem
from .levels import SKIP_REASON as SKIP_REASON
from .verifier import MAX_REASON as MAX_REASON
from .verifier import NOTATION_ARTIFACT, NotationNativeVerifier
from .verify import EnvelopeResult, verify_envelope

# The names that ``from pullgate.verifiers.notation_native import *`` gives, as before the split;
# the constants imported ``as`` themselves above are re-exported too, but were never part of it.
__all__ = [
    "COSE",
    "JWS",
    "NOTATION_ARTIFACT",
    "PAYLOAD_TYPE",
    "EnvelopeResult",
    "NotationNativeVerifier",
    "NotationProblem",
    "verify_envelope",
]
