"""`make demo`: the typical workflow of README.md, end to end, on a throwaway database.

The commands are read from the shell blocks of the README's "The typical workflow"
section, so the demo runs exactly what a newcomer reads. Every command is printed as
written there, followed by what it printed; a command that exits otherwise than the
README says (0, or the `# exit N` of its comment) stops the demo. Then a few more looks.
It uses only files shipped in demo/ and needs no network; the database and the secrets
key live in a temporary folder that is removed at the end. The demo ends by writing the
report of its database (`deploytrack report`), which outlives it: by default
build/demo-report.html (replaced on each run), or the path given with --report.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = "## The typical workflow"
BIN = Path(sys.executable).parent  # the venv's bin: `deploytrack` is installed there
REPORT = ROOT / "build" / "demo-report.html"

MORE_LOOKS = [
    "deploytrack deployment diff --from-env k8s-staging --from-logical-env staging"
    " --to-env k8s-prod --to-logical-env production --exit-code",
    "deploytrack environment list",
    "deploytrack variable list --logical-env production",
    "deploytrack variable history --logical-env production",
    "deploytrack deployment list --logical-env production --history",
]


@dataclass(frozen=True)
class Step:
    """One command as written (continuation lines included), or a comment line."""

    text: str
    expect: int = 0
    comment: bool = False


def workflow_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the README's typical-workflow section, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else len(readme)]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.M | re.S)


def steps(block: str) -> list[Step]:
    result: list[Step] = []
    lines: list[str] = []
    for line in block.splitlines():
        if not lines and not line.strip():
            continue
        if not lines and line.lstrip().startswith("#"):
            result.append(Step(line, comment=True))
            continue
        lines.append(line)
        if not line.endswith("\\"):
            text = "\n".join(lines)
            expected = re.search(r"#\s*exit (\d+)", lines[-1])
            result.append(Step(text, int(expected.group(1)) if expected else 0))
            lines = []
    if lines:
        raise ValueError(f"README block ends inside a command: {lines[-1]!r}")
    return result


def script(all_steps: list[Step]) -> str:
    """One `sh` script: variables set by one step are seen by the next, as in a terminal."""
    out = []
    for step in all_steps:
        shown = step.text if step.comment else "$ " + step.text
        out.append("printf '%s\\n' " + " ".join(shlex.quote(x) for x in shown.splitlines()))
        if step.comment:
            continue
        out.append(step.text)
        out.append(
            f'rc=$?; if [ "$rc" -ne {step.expect} ]; then echo "demo step failed: exit code'
            f' $rc, the README says {step.expect}" >&2; exit 1; fi'
        )
        if step.expect:
            out.append(f"echo '(exit code {step.expect}, as the README says)'")
        out.append("echo")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--report", type=Path, default=REPORT, help=f"where the report goes (default: {REPORT})"
    )
    report = parser.parse_args(argv).report.resolve()
    blocks = workflow_blocks(README.read_text(encoding="utf-8"))
    all_steps = [step for block in blocks for step in steps(block)]
    all_steps.append(Step("# --- A few more looks", comment=True))
    all_steps += [Step(command) for command in MORE_LOOKS]
    # The report of the demo's whole history, which took seconds: its window starts with it.
    all_steps.append(
        Step("# --- The report of this database, to open in any browser", comment=True)
    )
    all_steps.append(Step('deploytrack report --output "$DEMO_REPORT" --since "$DEMO_START"'))
    report.parent.mkdir(parents=True, exist_ok=True)
    # `report` never writes over a file: the previous demo's report goes first.
    report.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="deploytrack-demo-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYTRACK_")}
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            # The README's `mktemp -d` then creates the database inside this folder, and
            # the secrets key is not the user's: both go when the demo ends.
            TMPDIR=tmp,
            DEPLOYTRACK_SECRETS_KEY_FILE=str(Path(tmp) / "secrets.key"),
            DEMO_REPORT=str(report),
            DEMO_START=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        print(f"# The typical workflow of README.md, on a throwaway database in {tmp}\n")
        sys.stdout.flush()
        done = subprocess.run(["sh", "-c", script(all_steps)], cwd=ROOT, env=env, check=False)
        if done.returncode:
            sys.exit(done.returncode)
    print("Demo finished: the database and the secrets key were thrown away.")
    print(f"The demo's report: {report}")


if __name__ == "__main__":
    main()
