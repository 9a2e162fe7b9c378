"""Resolve a tag to the digest a registry serves for it, over oras' `Registry`.

This is the only module that imports oras (and requests); it is imported only when a tag
must be resolved through a registry. oras 0.2 provides the HTTP session and the
authentication backend interface; this module closes its gaps:

- there is no resolve call: `RegistryClient.resolve` sends one HEAD with the four
  manifest media types and reads Docker-Content-Digest (GET + sha256 of the body only
  when that header is missing or not sha256, the Content-Type is not a manifest type, or
  HEAD is refused with 405); no blob is ever requested;
- requests have no timeout: every request here has one (connect, and each read);
- `do_request` retries any error with sleeps of 3 to 83 s (~2 min): it is replaced by one
  without that decorator; the only retry left is one, when a connection fails outright;
- one token is cached whatever its scope: tokens are cached by (realm, service, scope);
- the token backend cannot answer a Basic challenge: `ChallengeAuth` speaks both;
- credentials come only from ~/.docker/config.json: they come from
  `deploytrack.registry.credentials` ($DOCKER_CONFIG, helpers) or explicit options.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import oras.auth.base
import oras.auth.utils
import oras.provider
import requests
import urllib3.exceptions
from oras.version import __version__ as oras_version

from deploytrack import __version__, jsondoc
from deploytrack.digests import normalize_sha256
from deploytrack.registry import RegistryError
from deploytrack.registry.media import MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, OCI_INDEX
from deploytrack.registry.options import Credentials, RegistryOptions
from deploytrack.registry.reference import Reference, api_host

ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
_SHOWN_TAGS = 10


@dataclass(frozen=True)
class Page:
    """A page of the referrers API: its body, and the absolute URL of the next, if any."""

    body: bytes
    next_url: str | None


def _next_link(header: str, base: str) -> str | None:
    """The `rel="next"` target of a Link header (RFC 8288), absolute; None without one."""
    for part in header.split(","):
        target, _, params = part.strip().partition(";")
        target = target.strip()
        rels = [p.strip().replace(" ", "") for p in params.split(";")]
        if (
            target.startswith("<")
            and target.endswith(">")
            and ('rel="next"' in rels or "rel=next" in rels)
        ):
            return urljoin(base, target[1:-1])
    return None


@dataclass(frozen=True)
class Manifest:
    """What a reference points to: its digest, media type, and body when it was fetched."""

    digest: str
    media_type: str
    body: bytes | None = None


@dataclass(frozen=True)
class Answer:
    """A registry's answer to one `RegistryClient.call`: status, headers, bounded body."""

    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    too_large: bool  # the body went on past the limit (only the limit was kept)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def _no_netrc(request: Any) -> Any:
    """Session-level no-op auth: stops requests from adding ~/.netrc logins on its own."""
    return request


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps (args, .reason, __cause__, __context__)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [*current.args, getattr(current, "reason", None)]
        nested += [current.__cause__, current.__context__]
        todo += [n for n in nested if isinstance(n, BaseException)]


def _first(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((c for c in _causes(exc) if isinstance(c, kind)), None)


def _is_dns_failure(exc: BaseException) -> bool:
    return any(
        isinstance(c, (socket.gaierror, urllib3.exceptions.NameResolutionError))
        for c in _causes(exc)
    )


def _transport_error(exc: requests.RequestException, host: str, timeout: float) -> RegistryError:
    """One line for a request that got no HTTP answer."""
    tls = _first(exc, ssl.SSLError)
    if isinstance(exc, requests.exceptions.SSLError) or tls is not None:
        if isinstance(tls, ssl.SSLCertVerificationError):
            reason = f"certificate verify failed: {tls.verify_message}"
        elif isinstance(tls, ssl.SSLError) and tls.reason:
            reason = str(tls.reason).lower().replace("_", " ")
        else:
            reason = "handshake failed"
        return RegistryError(
            f"TLS failure talking to {host} ({reason}): give --ca-file PEM to trust a private "
            "CA, or --plain-http if the registry serves plain HTTP"
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return RegistryError(
            f"timeout: could not connect to {host} within {timeout:g} s (--registry-timeout)"
        )
    if isinstance(exc, requests.exceptions.Timeout) or _first(exc, TimeoutError):
        return RegistryError(
            f"timeout: {host} gave no answer within {timeout:g} s (--registry-timeout)"
        )
    if _is_dns_failure(exc):
        return RegistryError(f"unknown registry host {host}: the name does not resolve")
    if _first(exc, ConnectionRefusedError):
        return RegistryError(f"connection refused by {host}: is a registry listening there?")
    if _first(exc, ConnectionResetError) or _first(exc, ConnectionError):
        return RegistryError(f"connection to {host} failed: it closed without an answer")
    return RegistryError(f"request to {host} failed ({type(exc).__name__})")


def _content_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _repository_of(url: str) -> str:
    """The repository a /v2/<name>/{manifests,blobs,tags,referrers}/... URL is about ("" if
    none)."""
    path = urlsplit(url).path
    if not path.startswith("/v2/"):
        return ""
    for marker in ("/manifests/", "/blobs/", "/tags/", "/referrers/"):
        if marker in path:
            return path[4 : path.rindex(marker)]
    return ""


class ChallengeAuth(oras.auth.base.AuthBackend):  # type: ignore[misc]  # oras is untyped
    """An oras auth backend that answers both challenge kinds a registry sends.

    Basic: the login is sent to the registry. Bearer: a token is fetched from the realm
    (anonymously, with the login as Basic, or by exchanging an identity token) and cached
    by (realm, service, scope), so a second repository gets its own token.
    """

    def __init__(self, registry: _OrasRegistry, credentials: Credentials | None) -> None:
        super().__init__()
        self._registry = registry
        self.session = registry.session
        self.prefix = registry.prefix
        self._tls_verify = registry._tls_verify
        self.credentials = credentials
        self.tokens: dict[tuple[str, str, str], str] = {}
        # Whether the last answer to a challenge carried the login (for error messages).
        self.sent_credentials = False

    def load_configs(self, container: Any, configs: list[Any] | None = None) -> None:
        """oras reads ~/.docker/config.json here; deploytrack resolved the login already."""

    def get_auth_header(self) -> dict[str, str]:
        return {}

    def authenticate_request(
        self, original: requests.Response, headers: dict[str, str] | None, refresh: bool = False
    ) -> tuple[dict[str, str], bool]:
        """Headers that answer `original`'s challenge, and whether the request is worth retrying."""
        result = dict(headers or {})
        raw = original.headers.get("WWW-Authenticate", "").strip()
        scheme = raw.split(None, 1)[0].lower() if raw else ""
        host = urlsplit(original.url).netloc
        if scheme == "basic":
            creds = self.credentials
            if creds is None or creds.password is None:
                self.sent_credentials = False
                return result, False
            self.sent_credentials = True
            basic = oras.auth.utils.get_basic_auth(creds.username, creds.password)
            result["Authorization"] = f"Basic {basic}"
            return result, True
        if scheme == "bearer":
            challenge = oras.auth.utils.parse_auth_header(raw)
            scope = challenge.scope or f"repository:{_repository_of(original.url)}:pull"
            token = self._token(challenge.realm, challenge.service or "", scope, host, refresh)
            result["Authorization"] = f"Bearer {token}"
            return result, True
        raise RegistryError(
            f"{host} asks for an authentication scheme deploytrack does not speak "
            f"({scheme or 'no WWW-Authenticate challenge'}); it supports Basic and Bearer"
        )

    def _token(self, realm: str | None, service: str, scope: str, host: str, refresh: bool) -> str:
        parts = urlsplit(realm or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"{host} names a token service that is not a URL: {realm!r}")
        assert realm is not None
        key = (realm, service, scope)
        if not refresh and key in self.tokens:
            return self.tokens[key]
        creds = self.credentials
        if creds is not None and parts.scheme == "http" and self.prefix == "https":
            raise RegistryError(
                f"{host} sends logins to a plain-HTTP token service ({parts.netloc}): refused; "
                "give --plain-http if that is intended"
            )
        params = {"service": service, "scope": scope} if service else {"scope": scope}
        headers = {"Accept": "application/json"}
        if creds is not None and creds.identity_token:
            form = {**params, "grant_type": "refresh_token", "client_id": "deploytrack"}
            form["refresh_token"] = creds.identity_token
            response = self._registry.send("POST", realm, data=form, headers=headers)
        else:
            if creds is not None and creds.password is not None:
                basic = oras.auth.utils.get_basic_auth(creds.username, creds.password)
                headers["Authorization"] = f"Basic {basic}"
            response = self._registry.send("GET", realm, params=params, headers=headers)
        self.sent_credentials = creds is not None
        with response:
            if response.status_code in (401, 403):
                if creds is None:
                    raise _auth_required(host, _repository_of_scope(scope))
                raise RegistryError(
                    f"authentication failed: the token service of {host} ({parts.netloc}) "
                    f"refused {creds}"
                )
            if response.status_code != 200:
                raise RegistryError(
                    f"the token service of {host} ({parts.netloc}) answered HTTP "
                    f"{response.status_code} {response.reason}"
                )
            try:
                body = response.json()
                token = body.get("token") or body.get("access_token")
            except (ValueError, AttributeError):
                token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service of {host} ({parts.netloc}) sent no token")
        self.tokens[key] = token
        return token


def _repository_of_scope(scope: str) -> str:
    # repository:<name>:<actions>; the name may not contain ':' except a registry port.
    kind, _, rest = scope.partition(":")
    return rest.rpartition(":")[0] if kind == "repository" and ":" in rest else scope


def _auth_required(host: str, repository: str) -> RegistryError:
    return RegistryError(
        f"authentication required: {host} wants a login to read {repository} (or it does not "
        f"exist): give --registry-server {host} --registry-username USER "
        "--registry-password-stdin, or log in with docker login"
    )


class _OrasRegistry(oras.provider.Registry):  # type: ignore[misc]  # oras is untyped
    """oras' Registry with a bounded `do_request`: timeout, no retry loop, both challenges."""

    session: requests.Session  # oras' __init__ sets it; oras itself is untyped

    def __init__(
        self,
        hostname: str,
        *,
        plain_http: bool,
        tls_verify: bool | str,
        timeout: float,
        credentials: Credentials | None,
    ) -> None:
        super().__init__(hostname=hostname, insecure=plain_http, tls_verify=tls_verify)
        self.session.auth = _no_netrc
        self.session.headers["User-Agent"] = f"deploytrack/{__version__} oras-py/{oras_version}"
        self.timeout = timeout
        self.auth: ChallengeAuth = ChallengeAuth(self, credentials)
        # The Authorization that last worked, by repository: sent up front next time.
        self._authorization: dict[str, str] = {}

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request, with the timeout; retried once only when the connection failed."""
        host = urlsplit(url).netloc
        for attempt in (1, 2):
            try:
                return self.session.request(
                    method, url, timeout=self.timeout, verify=self._tls_verify, **kwargs
                )
            except (requests.exceptions.SSLError, requests.exceptions.Timeout) as exc:
                raise _transport_error(exc, host, self.timeout) from None
            except requests.exceptions.ConnectionError as exc:
                if attempt == 2 or _is_dns_failure(exc):
                    raise _transport_error(exc, host, self.timeout) from None
            except requests.RequestException as exc:
                raise _transport_error(exc, host, self.timeout) from None
        raise AssertionError("unreachable")

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """oras' do_request without its retry decorator: at most one answer to a challenge."""
        headers = dict(headers or {})
        repository = _repository_of(url)
        remembered = self._authorization.get(repository)
        if remembered:
            headers["Authorization"] = remembered
        response = self.send(method, url, data=data, json=json, headers=headers, stream=stream)
        if response.status_code != 401:
            return response
        retry_headers, changed = self.auth.authenticate_request(
            response, headers, refresh=remembered is not None
        )
        if not changed:
            return response
        response.close()
        response = self.send(
            method, url, data=data, json=json, headers=retry_headers, stream=stream
        )
        if response.status_code not in (401, 403):
            self._authorization[repository] = retry_headers["Authorization"]
        return response


def _tls_verify(options: RegistryOptions) -> bool | str:
    if options.ca_file is None:
        return True
    try:
        ssl.create_default_context(cafile=options.ca_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "no PEM certificate in it"
        raise RegistryError(f"cannot use --ca-file {options.ca_file}: {reason}") from None
    return options.ca_file


class RegistryClient:
    """Reads manifests of one registry: resolve a tag with HEAD, or fetch a manifest."""

    def __init__(
        self, registry: str, options: RegistryOptions, credentials: Credentials | None
    ) -> None:
        self.registry = registry
        self.options = options
        self.credentials = credentials
        self.scheme = "http" if options.plain_http else "https"
        self.oras = _OrasRegistry(
            api_host(registry),
            plain_http=options.plain_http,
            tls_verify=_tls_verify(options),
            timeout=options.timeout,
            credentials=credentials,
        )

    def manifest_url(self, ref: Reference) -> str:
        return (
            f"{self.scheme}://{api_host(ref.registry)}/v2/{ref.repository}/manifests/{ref.target}"
        )

    def resolve(self, ref: Reference) -> Manifest:
        """What `ref`'s tag points to: one HEAD; a GET only when the digest header is missing."""
        response = self.oras.do_request(self.manifest_url(ref), "HEAD", headers={"Accept": ACCEPT})
        with response:
            if response.status_code == 405:  # a registry (or proxy) without HEAD
                return self.fetch(ref)
            self._check(response, ref)
            media_type = _content_type(response)
            digest = normalize_sha256(response.headers.get("Docker-Content-Digest", ""))
        if digest is not None and media_type in MANIFEST_MEDIA_TYPES:
            return Manifest(digest, media_type)
        return self.fetch(ref)

    def fetch(self, ref: Reference) -> Manifest:
        """GET the manifest `ref` points to; its digest is the sha256 of the bytes served."""
        found = self._fetch(ref, missing_ok=False)
        assert found is not None
        return found

    def fetch_if_present(self, ref: Reference) -> Manifest | None:
        """Like `fetch`, but None when the registry has no such manifest (404)."""
        return self._fetch(ref, missing_ok=True)

    def _read(self, response: requests.Response, limit: int, what: str) -> bytes:
        """The body, refused as soon as it passes `limit` bytes."""
        body = bytearray()
        try:
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > limit:
                    raise RegistryError(
                        f"{what}: {self.registry} served more than {limit // (1024 * 1024)} MiB"
                    )
        except requests.RequestException as exc:
            raise _transport_error(exc, self.registry, self.options.timeout) from None
        return bytes(body)

    def _fetch(self, ref: Reference, *, missing_ok: bool) -> Manifest | None:
        response = self.oras.do_request(
            self.manifest_url(ref), "GET", headers={"Accept": ACCEPT}, stream=True
        )
        with response:
            if missing_ok and response.status_code == 404:
                return None
            self._check(response, ref)
            body = self._read(response, MAX_MANIFEST_BYTES, f"{ref} is not a manifest")
            header = normalize_sha256(response.headers.get("Docker-Content-Digest", ""))
            media_type = self._media_type(_content_type(response), bytes(body), ref)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if header is not None and header != digest:
            raise RegistryError(
                f"{self.registry} served a manifest for {ref} whose sha256 is {digest}, not the "
                f"{header} it announced: refusing it"
            )
        return Manifest(digest, media_type, bytes(body))

    def blob(self, ref: Reference, digest: str, limit: int) -> bytes:
        """GET a blob of `ref`'s repository, refused past `limit` bytes or when its sha256
        is not `digest` (a registry, or whatever sits in front of it, may serve anything)."""
        url = f"{self.scheme}://{api_host(ref.registry)}/v2/{ref.repository}/blobs/{digest}"
        shown = f"{ref.name}@{digest}"
        response = self.oras.do_request(url, "GET", stream=True)
        with response:
            if response.status_code == 404:
                raise RegistryError(f"blob {shown} is missing from {self.registry}")
            self._check(response, Reference(ref.registry, ref.repository, None, digest))
            body = self._read(response, limit, f"blob {shown} is too large")
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if actual != digest:
            raise RegistryError(
                f"{self.registry} served bytes for blob {shown} whose sha256 is {actual}: "
                "refusing them (the registry's storage is corrupt, or something altered them)"
            )
        return body

    def referrers(self, ref: Reference, digest: str, url: str | None = None) -> Page | None:
        """One page of the OCI 1.1 referrers API for `digest` (`url`: a next page), or None
        when the registry has no referrers API (404, as distribution 2.8 and ghcr.io)."""
        first = f"{self.scheme}://{api_host(ref.registry)}/v2/{ref.repository}/referrers/{digest}"
        target = url or first
        if urlsplit(target)[:2] != urlsplit(first)[:2]:
            # The login goes with every request of this repository: never to another host.
            raise RegistryError(
                f"{self.registry} links the next page of referrers to another server "
                f"({urlsplit(target).netloc or target[:80]}): refused"
            )
        response = self.oras.do_request(target, "GET", headers={"Accept": OCI_INDEX}, stream=True)
        with response:
            if response.status_code == 404 and url is None:
                return None
            self._check(response, Reference(ref.registry, ref.repository, None, digest))
            body = self._read(response, MAX_MANIFEST_BYTES, f"the referrers of {digest}")
            link = response.headers.get("Link", "")
        return Page(body, _next_link(link, target))

    def tags(self, repository: str) -> list[str] | None:
        """The repository's tags (first page), or None when it does not exist."""
        url = f"{self.scheme}://{api_host(self.registry)}/v2/{repository}/tags/list?n=1000"
        response = self.oras.do_request(url, "GET", headers={"Accept": "application/json"})
        with response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise RegistryError(f"HTTP {response.status_code}")
            try:
                tags = response.json().get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError("not JSON") from None
        return sorted(t for t in tags if isinstance(t, str))

    def _media_type(self, content_type: str, body: bytes, ref: Reference) -> str:
        """The manifest's media type: the Content-Type, else the body's mediaType field."""
        if content_type in MANIFEST_MEDIA_TYPES:
            return content_type
        try:
            declared = jsondoc.loads(body, max_bytes=MAX_MANIFEST_BYTES).get("mediaType")
        except jsondoc.JSONError as exc:
            raise RegistryError(f"{ref} from {self.registry}: the manifest is {exc}") from None
        except AttributeError:
            declared = None
        if isinstance(declared, str) and declared in MANIFEST_MEDIA_TYPES:
            return declared
        raise RegistryError(
            f"{ref} is not an image manifest or index: {self.registry} serves it as "
            f"{content_type or 'no media type'}"
        )

    def _check(self, response: requests.Response, ref: Reference) -> None:
        """Raise one line for any answer but 200."""
        status = response.status_code
        if status == 200:
            return
        host = self.registry
        if status == 401:
            if self.oras.auth.sent_credentials and self.credentials is not None:
                raise RegistryError(
                    f"authentication failed: {host} refused {self.credentials} for "
                    f"{ref.repository} (wrong password, or no pull access)"
                )
            raise _auth_required(host, ref.repository)
        if status == 403:
            who = str(self.credentials) if self.credentials else "anonymous requests"
            raise RegistryError(f"access denied: {host} refuses {who} for {ref.repository}")
        if status == 404:
            raise self._not_found(ref)
        if status == 400 and self.options.plain_http:
            raise RegistryError(
                f"{host} answered HTTP 400 to plain HTTP: if it serves HTTPS, drop --plain-http "
                "(and give --ca-file PEM if its CA is private)"
            )
        if status == 429:
            raise RegistryError(f"{host} refused the request: too many requests (HTTP 429)")
        if status >= 500:
            raise RegistryError(
                f"registry server error: {host} answered HTTP {status} {response.reason} for "
                f"{ref.repository}:{ref.target}"
            )
        raise RegistryError(
            f"{host} answered HTTP {status} {response.reason} for {ref.repository}:{ref.target}"
        )

    def _not_found(self, ref: Reference) -> RegistryError:
        try:
            tags = self.tags(ref.repository)
        except RegistryError:
            return RegistryError(f"{ref} not found on {self.registry}")
        if tags is None:
            return RegistryError(f"repository {ref.repository} not found on {self.registry}")
        shown = ", ".join(tags[:_SHOWN_TAGS]) + (", ..." if len(tags) > _SHOWN_TAGS else "")
        what = f"tag {ref.target}" if ref.digest is None else f"manifest {ref.digest}"
        return RegistryError(
            f"{what} not found in {ref.name}" + (f" (its tags: {shown})" if tags else "")
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        limit: int = MAX_MANIFEST_BYTES,
    ) -> Answer:
        """One request to this registry (`path` starts with /v2/, or is a URL on this
        registry's host, as a blob upload's Location is); any status is returned, the
        body read up to `limit` bytes. Used to push (deploytrack/registry/push.py)."""
        base = f"{self.scheme}://{api_host(self.registry)}"
        url = path if path.startswith(("http://", "https://")) else base + path
        response = self.oras.do_request(url, method, data=data, headers=headers, stream=True)
        with response:
            body = bytearray()
            too_large = False
            try:
                if method != "HEAD":
                    for chunk in response.iter_content(65536):
                        body += chunk
                        if len(body) > limit:
                            too_large = True
                            del body[limit:]
                            break
            except requests.RequestException as exc:
                raise _transport_error(exc, self.registry, self.options.timeout) from None
            return Answer(
                response.status_code,
                response.reason or "",
                {k.lower(): v for k, v in response.headers.items()},
                bytes(body),
                too_large,
            )
