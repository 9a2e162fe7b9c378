"""Build the demo's files: an OCI image layout with api-server 1.0.0 and 1.1.0, and one
in-toto SLSA provenance statement per version naming the image's digest.

The output is committed (demo/oci-layout, demo/attestations) so `make demo` needs no
network and no build tools. The build is deterministic: run it again and git sees no
change (a test checks this).

    python demo/build.py
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

HERE = Path(__file__).parent
LAYOUT = HERE / "oci-layout"
STATEMENTS = HERE / "attestations"
REPOSITORY = "registry.example.com/acme/api-server"
VERSIONS = ("1.0.0", "1.1.0")
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed times keep the bytes reproducible


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"


def _blob(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = LAYOUT / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}"


def _layer(version: str) -> tuple[bytes, bytes]:
    """A one-file layer: (uncompressed tar, gzip of it)."""
    content = f"api-server {version}\n".encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("app/VERSION")
        info.size, info.mtime, info.mode = len(content), EPOCH, 0o644
        tar.addfile(info, io.BytesIO(content))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return raw.getvalue(), packed.getvalue()


def _image(version: str) -> dict:
    tar, gz = _layer(version)
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/app/api-server"], "Labels": {"version": version}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _blob(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _blob(gz),
                    "size": len(gz),
                }
            ],
        }
    )
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _blob(manifest),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": version},
    }


def _statement(version: str, digest: str) -> bytes:
    return _json(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": REPOSITORY, "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://example.com/acme/release@v1",
                    "externalParameters": {"version": version, "workflow": "release"},
                },
                "runDetails": {
                    "builder": {"id": "https://ci.example.com/acme/release"},
                    "metadata": {"invocationId": f"release-{version}"},
                },
            },
        }
    )


def main() -> None:
    shutil.rmtree(LAYOUT, ignore_errors=True)
    shutil.rmtree(STATEMENTS, ignore_errors=True)
    LAYOUT.mkdir(parents=True)
    STATEMENTS.mkdir(parents=True)
    (LAYOUT / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    manifests = [_image(v) for v in VERSIONS]
    (LAYOUT / "index.json").write_bytes(
        _json(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            }
        )
    )
    for version, descriptor in zip(VERSIONS, manifests, strict=True):
        path = STATEMENTS / f"api-server-{version}.provenance.json"
        path.write_bytes(_statement(version, descriptor["digest"]))
        print(f"{version}: {descriptor['digest']} -> {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
