"""DSSE: the pre-authentication encoding, envelope bytes, and signature bytes (pure).

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

LEN is the length in bytes, in ASCII decimal, with no leading zeros
(https://github.com/secure-systems-lab/dsse/blob/master/protocol.md). Signatures are over
PAE(payloadType, payload): the decoded payload bytes, never the base64 text, so a
signature binds both the payload and its type.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from deploytrack.evidence.parse import Envelope

_PREFIX = b"DSSEv1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding of a payload and its type."""
    kind = payload_type.encode("utf-8")
    return b" ".join([_PREFIX, str(len(kind)).encode(), kind, str(len(payload)).encode(), payload])


def envelope_bytes(
    payload_type: str, payload: bytes, signatures: Sequence[tuple[str, bytes | str]]
) -> bytes:
    """A DSSE envelope as compact JSON with sorted keys, ending with a newline.

    `signatures` are (keyid, signature): bytes are base64-encoded, a str is an existing
    `sig` field kept verbatim. An empty list makes an unsigned envelope.
    """
    document = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [
            {
                "keyid": keyid,
                "sig": sig if isinstance(sig, str) else base64.b64encode(sig).decode("ascii"),
            }
            for keyid, sig in signatures
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _b64(text: str) -> bytes | None:
    alphabets: list[bytes | None] = [None] if "+" in text or "/" in text else [None, b"-_"]
    for altchars in alphabets:
        try:
            return base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def signature_candidates(sig: str) -> list[bytes]:
    """The byte strings a DSSE `sig` field may stand for.

    The standard form is base64 (standard or URL-safe alphabet) of the signature. Chainloop
    bundles encode it twice (base64 of the base64 text); that inner form is tried as well.
    Either way the signature must verify over the PAE with a trusted key, so accepting
    both forms admits nothing that was not signed.
    """
    outer = _b64(sig)
    if outer is None:
        return []
    forms = [outer]
    if outer and all(32 < byte < 127 for byte in outer):
        inner = _b64(outer.decode("ascii"))
        if inner:
            forms.append(inner)
    return forms


def signed_message(envelope: Envelope) -> bytes:
    return pae(envelope.payload_type, envelope.payload)


__all__ = ["envelope_bytes", "pae", "signature_candidates", "signed_message"]
