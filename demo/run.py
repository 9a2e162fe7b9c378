"""`make demo`: the typical workflow, end to end, on a throwaway database.

Every command is printed as a user would type it, followed by what deploytrack printed.
It uses only files shipped in demo/ and needs no network; the database and the secrets
key live in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
EXE = Path(sys.executable).parent / "deploytrack"


def deploytrack(*args: str, env: dict[str, str], stdin: str | None = None, expect: int = 0) -> str:
    shown = " ".join(shlex.quote(a) for a in args)
    piped = f"printf '%s\\n' {shlex.quote('*' * 8)} | " if stdin is not None else ""
    print(f"\n$ {piped}deploytrack {shown}", flush=True)
    result = subprocess.run([str(EXE), *args], env=env, capture_output=True, text=True, input=stdin)
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)
    if result.returncode != expect:
        sys.exit(f"demo step failed with exit code {result.returncode}")
    if expect:
        print(f"(exit code {result.returncode}, as expected)")
    return result.stdout


def section(title: str) -> None:
    print(f"\n# --- {title}", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="deploytrack-demo-") as tmp:
        env = {
            **os.environ,
            "DEPLOYTRACK_DB": str(Path(tmp) / "demo.db"),
            "DEPLOYTRACK_SECRETS_KEY_FILE": str(Path(tmp) / "secrets.key"),
        }
        print(f"# A throwaway database: DEPLOYTRACK_DB={env['DEPLOYTRACK_DB']}")
        section("Evidence, environments, and three releases")
        attestations = HERE / "attestations"
        for version in ("1.0.0", "1.1.0"):
            deploytrack(
                "attestation", "import",
                str(attestations / f"api-server-{version}.provenance.json"),
                "--project", "api-server", "--version", version, "--workflow", "release",
                env=env,
            )  # fmt: skip
        deploytrack("environment", "create", "--name", "k8s-staging", "--type", "kubernetes",
                    "--description", "Staging cluster", env=env)  # fmt: skip
        deploytrack("environment", "create", "--name", "k8s-prod", "--type", "kubernetes",
                    "--description", "Production cluster", env=env)  # fmt: skip
        deploytrack("environment", "list", env=env)

        # The images are resolved from the OCI layout shipped in demo/ (skopeo's oci:DIR:TAG
        # syntax): the same flag resolves registry tags, with no network needed here.
        layout = os.path.relpath(HERE / "oci-layout")
        v100, v110 = f"oci:{layout}:1.0.0", f"oci:{layout}:1.1.0"
        common = ("--deployment-name", "api-server", "--kind", "CONTAINER_IMAGE")
        deploytrack("deployment", "record", "--env", "k8s-staging", "--logical-env", "staging",
                    *common, "--oci-ref", v100, env=env)  # fmt: skip
        deploytrack("deployment", "record", "--env", "k8s-prod", "--logical-env", "production",
                    *common, "--oci-ref", v100, env=env)  # fmt: skip
        deploytrack("deployment", "record", "--env", "k8s-prod", "--logical-env", "production",
                    *common, "--oci-ref", v100, env=env)  # fmt: skip
        deploytrack("deployment", "record", "--env", "k8s-prod", "--logical-env", "production",
                    *common, "--oci-ref", v110, env=env)  # fmt: skip
        deploytrack("deployment", "list", "--logical-env", "production", env=env)
        deploytrack("deployment", "list", "--history", env=env)
        listed = json.loads(
            deploytrack("deployment", "list", "--logical-env", "production", "-o", "json", env=env)
        )
        deploytrack("deployment", "describe", str(listed[0]["id"]), env=env)
        bad_release_at = listed[0]["created_at"]

        section("1.1.0 misbehaves in production: roll back in one command")
        deploytrack("deployment", "rollback", "--env", "k8s-prod", "--logical-env",
                    "production", *common, env=env)  # fmt: skip
        section("The cause: production lacked its configuration. Set it, secrets encrypted")
        deploytrack("variable", "set", "DATABASE_URL", "postgres://db.prod.internal/api",
                    "--logical-env", "production", env=env)  # fmt: skip
        deploytrack("variable", "set", "DB_PASSWORD", "--secret", "--stdin", "--logical-env",
                    "production", "--env", "k8s-prod", env=env,
                    stdin="demo-only-password\n")  # fmt: skip
        deploytrack("variable", "set", "LOG_LEVEL", "debug", "--logical-env", "production",
                    "--deployment-name", "api-server", env=env)  # fmt: skip
        deploytrack("variable", "list", "--logical-env", "production", env=env)
        deploytrack("variable", "resolve", "--logical-env", "production", "--env", "k8s-prod",
                    "--deployment-name", "api-server", "--require", "DATABASE_URL",
                    "--require", "DB_PASSWORD", env=env)  # fmt: skip

        section("1.1.0 goes out again, through staging this time")
        deploytrack("deployment", "record", "--env", "k8s-staging", "--logical-env", "staging",
                    *common, "--oci-ref", v110, env=env)  # fmt: skip
        deploytrack("deployment", "diff", "--from-env", "k8s-staging", "--from-logical-env",
                    "staging", "--to-env", "k8s-prod", "--to-logical-env", "production",
                    "--exit-code", env=env, expect=1)  # fmt: skip
        deploytrack("deployment", "promote", "--env", "k8s-staging", "--to-env", "k8s-prod",
                    *common, "--from-logical-env", "staging", "--to-logical-env",
                    "production", env=env)  # fmt: skip
        deploytrack("deployment", "diff", "--from-env", "k8s-staging", "--from-logical-env",
                    "staging", "--to-env", "k8s-prod", "--to-logical-env", "production",
                    "--exit-code", env=env)  # fmt: skip
        deploytrack("status", env=env)

        section("What ran in production when the bad release was deployed?")
        deploytrack("deployment", "list", "--logical-env", "production", "--at",
                    bad_release_at, env=env)  # fmt: skip
        deploytrack("deployment", "list", "--logical-env", "production", "--history", env=env)
        deploytrack("doctor", env=env)
    print("\nDemo finished: the database and the secrets key were thrown away.")


if __name__ == "__main__":
    main()
