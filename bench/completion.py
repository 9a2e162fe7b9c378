"""Shell completion: the time of one <TAB>, measured as bash runs it (the whole process).

    python bench/completion.py [--runs N] [--records N]

Builds a throwaway database with the installed CLI (10 environments, N records over 100
deployment names), then runs `COMP_WORDS=... COMP_CWORD=... _DEPLOYTRACK_COMPLETE=
bash_complete deploytrack` N times per case and prints the median and the slowest run as
a markdown table, beside `python -c pass` (the interpreter's own start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = str(Path(sys.executable).parent / "deploytrack")
REPO = Path(__file__).resolve().parent.parent
STATEMENT = REPO / "tests" / "fixtures" / "attestations" / "chainloop-full.json"
DIGEST = "sha256:264f55a6ff9cec2f4742a9faacc033b29f65c04dd4480e71e23579d484288d61"

CASES = {
    "environment (--env k8s)": "deploytrack deployment record --env k8s",
    "stage (--logical-env )": "deploytrack status --logical-env ",
    "deployment name (--deployment-name svc-1)": (
        "deploytrack deployment list --deployment-name svc-1"
    ),
    "kind (--kind H)": "deploytrack deployment list --kind H",
    "command names (deploytrack )": "deploytrack ",
}


def run(*args: str, db: str) -> None:
    subprocess.run([EXE, "--db", db, *args], check=True, capture_output=True)


def build(db: str, records: int) -> None:
    run("attestation", "import", str(STATEMENT), db=db)
    for index in range(10):
        run("environment", "create", "--name", f"k8s-{index}", db=db)
    for index in range(records):
        run("deployment", "record", "--env", f"k8s-{index % 10}", "--logical-env", "production",
            "--deployment-name", f"svc-{index % 100}", "--kind", "CONTAINER_IMAGE",
            "--digest", DIGEST, db=db)  # fmt: skip


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--records", type=int, default=200)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "completion.db")
        build(db, options.records)
        print("| completion | median | slowest |")
        print("|---|---|---|")
        floor = timed([sys.executable, "-c", "pass"], dict(os.environ), options.runs)
        print(f"| `python -c pass` | {statistics.median(floor):.0f} ms | {max(floor):.0f} ms |")
        for label, words in CASES.items():
            env = {
                **os.environ,
                "DEPLOYTRACK_DB": db,
                "COMP_WORDS": words,
                "COMP_CWORD": str(len(words.split(" ")) - 1),
                "_DEPLOYTRACK_COMPLETE": "bash_complete",
            }
            times = timed([EXE], env, options.runs)
            print(f"| {label} | {statistics.median(times):.0f} ms | {max(times):.0f} ms |")


if __name__ == "__main__":
    main()
