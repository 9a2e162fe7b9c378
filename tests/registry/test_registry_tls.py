"""TLS against a real HTTPS registry whose certificate comes from a CA the tests generate."""

from __future__ import annotations

from conftest import assert_refused

from . import registry_support as rs
from .conftest import recorded


def test_ca_file_trusts_the_private_ca(tls_registry: rs.Registry, ready, record_ref):
    digest = tls_registry.digests["acme/app:1.0"]
    ready(digest)
    result = record_ref(f"{tls_registry.host}/acme/app:1.0", "--ca-file", str(tls_registry.ca))
    assert recorded(result)["digest"] == digest


def test_tls_is_verified_by_default(refuse_ref, tls_registry: rs.Registry, ready):
    ready()
    line = refuse_ref(
        f"{tls_registry.host}/acme/app:1.0",
        contains=f"TLS failure talking to {tls_registry.host} (certificate verify failed:",
    ).stderr
    assert "give --ca-file PEM" in line and "--plain-http" in line


def test_a_ca_that_did_not_sign_the_certificate_fails(
    refuse_ref, tls_registry: rs.Registry, tls: rs.TlsFiles, ready
):
    ready()
    refuse_ref(
        f"{tls_registry.host}/acme/app:1.0",
        "--ca-file",
        str(tls.other_ca),
        contains="certificate verify failed",
    )


def test_plain_http_against_an_https_registry(refuse_ref, tls_registry: rs.Registry, ready):
    ready()
    refuse_ref(
        f"{tls_registry.host}/acme/app:1.0",
        "--plain-http",
        contains="answered HTTP 400 to plain HTTP: if it serves HTTPS, drop --plain-http",
    )


def test_ca_file_that_is_not_pem(refuse_ref, tls_registry: rs.Registry, ready, tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    ready()
    refuse_ref(
        f"{tls_registry.host}/acme/app:1.0",
        "--ca-file",
        str(bogus),
        contains=f"cannot use --ca-file {bogus}",
    )


def test_missing_ca_file_is_a_usage_error(record_ref, ready, db_path, tmp_path):
    ready()
    result = record_ref("127.0.0.1:1/acme/app:1.0", "--ca-file", str(tmp_path / "absent.pem"))
    assert_refused(result, 2, "does not exist")
