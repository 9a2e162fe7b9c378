"""What a manifest may be, and how large: the one list of media types and limits that the
registry client, the OCI layout reader and the artifact checks share.

No imports: the layout reader and the Helm check use it without loading oras.
"""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

# OCI manifest, OCI index, Docker v2 manifest, Docker manifest list (oras' defaults, in its
# order). Sending fewer makes registries answer 404 for an index or down-convert a list to
# one platform's manifest.
MANIFEST_MEDIA_TYPES: tuple[str, ...] = (
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
)
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # containerd's limit for a manifest
MAX_INDEX_BYTES = 16 * 1024 * 1024  # an OCI layout's index.json

# Attestations as OCI 1.1 referrers (registry/push.py pushes them, registry/referrers.py
# pulls them): the empty config every artifact manifest points to (the two bytes `{}`),
# and the artifact types of the three attestation formats (as
# actions/attest-build-provenance and cosign write them).
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
SIGSTORE_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
INTOTO_STATEMENT = "application/vnd.in-toto+json"
# What a Sigstore bundle referrer holds (the annotation GitHub and cosign set): a bundle
# of `message-signature` content is a signature, not an attestation.
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
MESSAGE_SIGNATURE = "message-signature"
# Bounds on what one pull reads, whatever a registry or layout says: pages of the
# referrers API (more is taken for a loop), referrers listed, and attestation bytes in all
# (as one `attestation import` input).
MAX_REFERRER_PAGES = 100
MAX_REFERRERS = 1000
MAX_PULLED_BYTES = 64 * 1024 * 1024
