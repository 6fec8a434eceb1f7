"""The ``ddaebm-train`` command a wheel puts on the environment's ``PATH``.

A wheel carries the trainer as ``ddaebm/bin/ddaebm-train``; this entry point replaces itself
with that program (``os.execv`` on POSIX: the same process, so exit codes, signals and Ctrl-C
behave as if the program had been started directly). Without a bundled trainer (an install
from the source tree) it looks for another ``ddaebm-train`` on ``PATH``, skipping itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def bundled_trainer() -> Path | None:
    """The trainer a wheel ships inside the package, if this install has one."""
    path = Path(__file__).with_name("bin") / ("ddaebm-train.exe" if os.name == "nt" else "ddaebm-train")
    return path if path.is_file() else None


def _is_this_wrapper(path: Path) -> bool:
    """Whether ``path`` is the entry-point script pip wrote for this module (a small text file
    importing ``ddaebm._cli``), not a trainer program."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"ddaebm._cli" in head


def trainer_on_path() -> Path | None:
    """The first ``ddaebm-train`` on ``PATH`` that is a real trainer, not this wrapper."""
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("ddaebm-train", path=entry or ".")
        if found and not _is_this_wrapper(Path(found)):
            return Path(found)
    return None


def main() -> int:
    program = bundled_trainer() or trainer_on_path()
    if program is None:
        sys.stderr.write(
            "error: this ddaebm package has no bundled ddaebm-train (it was installed from the "
            "source tree, not a wheel) and no other ddaebm-train is on PATH; build it with "
            "`cargo build --release -p ddaebm-train` or install a wheel (scripts/build-wheel.sh)\n"
        )
        return 127
    args = [str(program), *sys.argv[1:]]
    if os.name == "posix":
        os.execv(program, args)  # does not return
    return subprocess.call(args)


if __name__ == "__main__":
    sys.exit(main())
