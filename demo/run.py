"""`make demo`: the typical workflow, end to end, on a throwaway database.

Every command is printed as a user would type it, followed by what deploytrack printed.
It uses only files shipped in demo/ and needs no network.
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


def deploytrack(*args: str, env: dict[str, str]) -> str:
    shown = " ".join(shlex.quote(a) for a in args)
    print(f"\n$ deploytrack {shown}", flush=True)
    result = subprocess.run([str(EXE), *args], env=env, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)
    if result.returncode != 0:
        sys.exit(f"demo step failed with exit code {result.returncode}")
    return result.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="deploytrack-demo-") as tmp:
        env = {**os.environ, "DEPLOYTRACK_DB": str(Path(tmp) / "demo.db")}
        print(f"# A throwaway database: DEPLOYTRACK_DB={env['DEPLOYTRACK_DB']}")
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
    print("\nDemo finished: the database was thrown away.")


if __name__ == "__main__":
    main()
