"""Keyless verification of Sigstore bundles with sigstore-python, offline.

The one module that imports `sigstore` (~350 ms: pydantic, tuf, rich, rfc3161-client),
and only inside its functions, so no other command pays for it.

What a keyless verification checks, all of it by sigstore-python (`Verifier.verify_dsse`):
the certificate chains to a certificate authority of the trusted root, the transparency
log entry's inclusion proof and signed entry timestamp (or an RFC 3161 timestamp) verify
with the root's keys, the certificate's SCT verifies, the DSSE signature verifies with the
certificate's key, and the certificate names the expected identity (its subject
alternative name) and OIDC issuer. Nothing here goes to the network: the trusted root is
always given as bytes, either a `trusted_root.json` file or the Sigstore public-good root
that the installed sigstore package ships (read as a file, never through TUF, which would
write a cache and, online, fetch updates).

Before sigstore-python sees a bundle, its signing certificate is checked to be issued by
a certificate authority of the trusted root (`cryptography`'s `verify_directly_issued_by`):
a bundle of another Sigstore instance (GitHub's private one, whose bundles sigstore-python
cannot even load: they carry no transparency log entry) is then refused as "not signed by
a trusted root", the answer its user needs, instead of a parse error.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploytrack import jsondoc
from deploytrack.digests import sha256_of
from deploytrack.services import ServiceError, read_named_file

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

# A trusted_root.json is a few kilobytes (the public-good one ~7 KB); a hostile file must
# not cost unbounded memory.
MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
# The longest identity or issuer stored (the schema holds them to the same bound).
MAX_IDENTITY_CHARS = 4096
PUBLIC_GOOD = "the Sigstore public-good root"
_PUBLIC_GOOD_DIR = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
EXACT = "exact"
REGEXP = "regexp"


@dataclass(frozen=True)
class TrustedRootFile:
    """The bytes of a trusted_root.json, their digest, and where they came from (messages)."""

    digest: str
    data: bytes
    source: str


@dataclass(frozen=True)
class IdentityRule:
    """Who must have signed: an identity (exact, or a regular expression matching the whole
    identity) and the OIDC issuer that vouched for it."""

    identity: str
    issuer: str
    match: str = EXACT  # exact | regexp

    def describe(self) -> str:
        shown = f"matching {self.identity}" if self.match == REGEXP else self.identity
        return f"{shown} (issuer {self.issuer})"


@dataclass(frozen=True)
class Verified:
    """A verified bundle: the identity in its certificate that matched, the issuer, and the
    DSSE payload sigstore-python verified."""

    identity: str
    issuer: str
    payload_type: str
    payload: bytes


def identity_rule(identity: str, issuer: str, match: str = EXACT) -> IdentityRule:
    """An identity rule from the command line: bounded text, a regexp that compiles."""
    for what, value in (("identity", identity), ("issuer", issuer)):
        if not value or len(value) > MAX_IDENTITY_CHARS or not value.isprintable():
            raise ServiceError(
                f"the certificate {what} must be 1 to {MAX_IDENTITY_CHARS} printable "
                f"characters, got {value[:80]!r}"
            )
    if match == REGEXP:
        try:
            re.compile(identity)
        except re.error as exc:
            raise ServiceError(
                f"the identity regexp {identity[:80]!r} is not a regular expression: {exc}"
            ) from None
    return IdentityRule(identity, issuer, match)


def public_good_root() -> TrustedRootFile:
    """The Sigstore public-good production root that the installed sigstore package ships."""
    from importlib import resources

    # The embedded copy sigstore-python bootstraps its TUF client from: a package resource,
    # not API, so its absence in another sigstore version is a refusal, not a traceback.
    data = resources.files("sigstore._store").joinpath(_PUBLIC_GOOD_DIR, "trusted_root.json")
    try:
        raw = data.read_bytes()
    except OSError:
        raise ServiceError(
            f"the installed sigstore package ships no public-good trusted root "
            f"({_PUBLIC_GOOD_DIR}/trusted_root.json): give --trusted-root FILE"
        ) from None
    root = TrustedRootFile(sha256_of(raw), raw, PUBLIC_GOOD)
    _load_root(root)
    return root


def read_root(path: str) -> TrustedRootFile:
    """A trusted_root.json file, bounded and checked to be one (one line when it is not)."""
    raw = read_named_file(
        path,
        "trusted root",
        MAX_TRUSTED_ROOT_BYTES,
        f"is larger than {MAX_TRUSTED_ROOT_BYTES // 1024} KiB: a Sigstore trusted_root.json "
        "is a few kilobytes",
    )
    root = TrustedRootFile(sha256_of(raw), raw, path)
    _load_root(root)
    return root


def stored_root(digest: str, data: bytes) -> TrustedRootFile:
    """A trusted root kept in the database (a stage policy's)."""
    return TrustedRootFile(digest, data, f"trusted root {digest}")


def _one_line(text: str, limit: int = 300) -> str:
    """pydantic and sigstore explain on several lines, with links: one line, bounded."""
    lines = [line.strip() for line in text.splitlines()]
    kept = " ".join(line for line in lines if line and not line.startswith("For further"))
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"


def _load_root(root: TrustedRootFile) -> Any:
    """A sigstore Verifier of the root's bytes, or one line saying why they are not a
    trusted root. Constructing it asks for what a verification needs (certificate
    authorities, a transparency log), so a root without them is refused here, by name."""
    from pydantic import ValidationError
    from sigstore.errors import Error
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootMessage

    try:
        return Verifier(trusted_root=TrustedRoot(TrustedRootMessage.from_json(root.data)))
    except (ValidationError, Error, ValueError) as exc:
        raise ServiceError(
            f"{root.source} is not a valid Sigstore trusted root: {_one_line(str(exc))}"
        ) from None


def _b64der(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ServiceError(f"{what} has no certificate bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(f"{what} holds a certificate that is not base64") from None


def _leaf_certificate(doc: dict[str, Any], what: str) -> Certificate:
    """The signing certificate of a bundle (v0.3 `certificate`, or the first of v0.1/v0.2's
    `x509CertificateChain`)."""
    from cryptography import x509

    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise ServiceError(f"{what} is a Sigstore bundle without verification material")
    if "publicKey" in material:
        raise ServiceError(
            f"{what} is signed with a managed key, not a certificate: no identity to verify; "
            "verify it with 'attestation verify --key PUBLIC_KEY_PEM'"
        )
    raw: Any = None
    certificate = material.get("certificate")
    chain = material.get("x509CertificateChain")
    if isinstance(certificate, dict):
        raw = certificate.get("rawBytes")
    elif isinstance(chain, dict) and isinstance(chain.get("certificates"), list):
        first = chain["certificates"][0] if chain["certificates"] else None
        raw = first.get("rawBytes") if isinstance(first, dict) else None
    if raw is None:
        raise ServiceError(f"{what} is a Sigstore bundle without a signing certificate")
    try:
        return x509.load_der_x509_certificate(_b64der(raw, what))
    except ValueError:
        raise ServiceError(f"{what} holds a signing certificate that is not DER X.509") from None


def _authorities(root: TrustedRootFile) -> list[Certificate]:
    """Every certificate of the root's certificate authorities (Fulcio's chains)."""
    from cryptography import x509

    try:
        doc = jsondoc.loads(root.data, max_bytes=MAX_TRUSTED_ROOT_BYTES)
        found: list[Certificate] = []
        for authority in doc.get("certificateAuthorities") or []:
            chain = (authority.get("certChain") or {}).get("certificates") or []
            for item in chain:
                found.append(x509.load_der_x509_certificate(_b64der(item["rawBytes"], "")))
    except (jsondoc.JSONError, ServiceError, ValueError, KeyError, AttributeError):
        raise ServiceError(
            f"{root.source} is not a valid Sigstore trusted root: its certificate "
            "authorities cannot be read"
        ) from None
    return found


def _issued_by_root(leaf: Certificate, root: TrustedRootFile) -> bool:
    """Whether a certificate authority of the root signed the certificate (the first link
    of the chain; sigstore-python checks the whole chain and its validity after this)."""
    from cryptography.exceptions import InvalidSignature

    for authority in _authorities(root):
        if authority.subject != leaf.issuer:
            continue
        try:
            leaf.verify_directly_issued_by(authority)
        except (InvalidSignature, ValueError, TypeError):  # TypeError: an unsupported key
            continue
        return True
    return False


def certificate_identities(leaf: Certificate) -> list[str]:
    """The identities a certificate names, as sigstore-python's Identity policy reads them:
    e-mail and URI subject alternative names, and Sigstore's own "other name"."""
    from cryptography.x509 import (
        ExtensionNotFound,
        ObjectIdentifier,
        OtherName,
        RFC822Name,
        SubjectAlternativeName,
        UniformResourceIdentifier,
    )

    try:
        san = leaf.extensions.get_extension_for_class(SubjectAlternativeName).value
    except ExtensionNotFound:
        return []
    names: list[str] = list(san.get_values_for_type(RFC822Name))
    names += san.get_values_for_type(UniformResourceIdentifier)
    other = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
    names += [
        o.value.decode("utf-8", "replace")
        for o in san.get_values_for_type(OtherName)
        if o.type_id == other
    ]
    return names


def _matching(rule: IdentityRule, names: list[str]) -> str | None:
    if rule.match == EXACT:
        return rule.identity if rule.identity in names else None
    pattern = re.compile(rule.identity)
    return next((n for n in names if pattern.fullmatch(n)), None)


def verify_bundle(raw: bytes, rule: IdentityRule, root: TrustedRootFile, what: str) -> Verified:
    """Verify a stored Sigstore bundle for `rule` against `root`, offline; ServiceError with
    one line saying why not. `what` names the attestation in messages."""
    verifier = _load_root(root)
    doc = jsondoc.loads(raw, max_bytes=len(raw) + 1)
    if not isinstance(doc, dict) or "dsseEnvelope" not in doc:
        raise ServiceError(f"{what} is not a Sigstore bundle of a DSSE envelope")
    leaf = _leaf_certificate(doc, what)
    if not _issued_by_root(leaf, root):
        raise ServiceError(
            f"{what} is not signed by a trusted root: its certificate (issued by "
            f"{leaf.issuer.rfc4514_string()[:200]}) does not chain to {root.source}; give "
            "--trusted-root with the trusted_root.json of the Sigstore instance that signed "
            "it (for GitHub's private instance: 'gh attestation trusted-root')"
        )
    names = certificate_identities(leaf)
    matched = _matching(rule, names)
    if matched is None:
        shown = ", ".join(names)[:300] or "none"
        raise ServiceError(
            f"{what} was not signed by {rule.describe()}: its certificate names {shown}"
        )
    return _sigstore_verify(raw, rule, matched, root, verifier, what)


def _sigstore_verify(
    raw: bytes, rule: IdentityRule, matched: str, root: TrustedRootFile, verifier: Any, what: str
) -> Verified:
    from sigstore.errors import Error
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import policy

    try:
        bundle = Bundle.from_json(raw)
    except (InvalidBundle, ValueError) as exc:
        raise ServiceError(
            f"{what} is a Sigstore bundle that sigstore-python cannot verify (unsupported "
            f"form): {_one_line(str(exc))}"
        ) from None
    # The identity that matched, exactly: sigstore-python's own check of the certificate's
    # names and of the issuer extension then decides.
    wanted = policy.Identity(identity=matched, issuer=rule.issuer)
    try:
        payload_type, payload = verifier.verify_dsse(bundle, wanted)
    except Error as exc:
        raise ServiceError(
            f"{what} does not verify with {root.source} for {rule.describe()}: "
            f"{_one_line(str(exc))}"
        ) from None
    return Verified(matched, rule.issuer, payload_type, payload)


__all__ = [
    "EXACT",
    "MAX_TRUSTED_ROOT_BYTES",
    "PUBLIC_GOOD",
    "REGEXP",
    "IdentityRule",
    "TrustedRootFile",
    "Verified",
    "certificate_identities",
    "identity_rule",
    "public_good_root",
    "read_root",
    "stored_root",
    "verify_bundle",
]
