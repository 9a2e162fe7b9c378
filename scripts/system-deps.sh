#!/bin/sh
# Installs the Debian packages the tests use as real parts, when they are missing:
#   docker-registry (CNCF distribution registry), skopeo, apache2-utils (htpasswd), openssl;
#   postgresql (its initdb and pg_ctl: scripts/pgtemp.py starts a throwaway server);
#   chromium, the browser the report's tests drive through Playwright (Playwright's own
#   browser downloads are not used: /usr/bin/chromium is its executable).
# The tests start these as real parts and fail (never skip) when one is missing.
# CI runs as root; elsewhere sudo is used. Nothing is installed when all are present.
set -eu
missing=""
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
command -v skopeo >/dev/null 2>&1 || missing="$missing skopeo"
command -v htpasswd >/dev/null 2>&1 || missing="$missing apache2-utils"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
# Debian keeps the server's programs off $PATH, in a folder per major version.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
[ -z "$missing" ] && exit 0
echo "Installing test packages:$missing"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-get not found: install$missing with your package manager (the tests fail without them)" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
