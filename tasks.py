#!/usr/bin/env python3
"""Developer tasks that work on a fresh machine with only Python 3.10+ installed.

    python3 tasks.py demo   # venv + install, emulator, a Singer stream through the target, rows shown
    python3 tasks.py test   # venv + install with test extras, then the whole test suite

Both create ``.venv`` next to this file on first use (set TSI_VENV to use another place).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("TSI_VENV", HERE / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
DEMO_STREAM = HERE / "target_stitch_import" / "demo" / "customers.singer"


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    """Run a command, echoing it, and stop on failure."""
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], check=True, **kwargs)  # type: ignore[call-overload]


def pip_install(*args: str) -> None:
    """Run pip quietly; show its output only when it fails."""
    print("+ pip install", " ".join(args), flush=True)
    done = subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", *args],
        cwd=HERE, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(done.returncode)


def ensure_venv(extras: str = "") -> None:
    """Create the virtual environment and install the project (editable) into it."""
    if not PYTHON.exists():
        print(f"Creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
        pip_install("--upgrade", "pip")
    pip_install("-e", f".{extras}" if extras else ".")


def demo() -> int:
    """Run the README demo against the embedded emulator."""
    ensure_venv()
    work = Path(tempfile.mkdtemp(prefix="stitch-import-demo-"))
    database = work / "emulator.sqlite"
    token = "demo-token"
    emulator = subprocess.Popen(
        [
            str(BIN / "stitch-import-emulator"), "serve", "--port", "0",
            "--database", str(database), "--token", token,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None  # noqa: S101 - PIPE was asked for
        first = emulator.stdout.readline().strip()
        if not first.startswith("listening on "):
            print(f"The emulator did not start: {first!r}", file=sys.stderr)
            return 1
        url = first.removeprefix("listening on ")
        print(f"Emulator {url}, database {database}", flush=True)
        config = work / "config.json"
        config.write_text(json.dumps({"token": token, "api_url": url}), encoding="utf-8")
        print(f"\nSending {DEMO_STREAM.name} through target-stitch-import; STATE it writes:", flush=True)
        with DEMO_STREAM.open("rb") as stream:
            run(BIN / "target-stitch-import", "--config", config, stdin=stream)
        print("\nRows that landed (the stale replay of Finn did not overwrite the newer row):")
        run(BIN / "stitch-import-emulator", "show", "customers", "--database", database)
        run(BIN / "stitch-import-emulator", "show", "--database", database, "--stats")
    finally:
        emulator.terminate()
        emulator.wait(timeout=20)
    return 0


def test(pytest_args: list[str]) -> int:
    """Install with the test extras and run the whole suite."""
    ensure_venv("[test]")
    return subprocess.run([str(PYTHON), "-m", "pytest", *pytest_args], cwd=HERE, check=False).returncode


def main() -> int:
    """Dispatch ``demo`` or ``test``."""
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "test"}:  # noqa: PLR2004
        print(__doc__)
        return 2
    if sys.argv[1] == "demo":
        return demo()
    return test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
