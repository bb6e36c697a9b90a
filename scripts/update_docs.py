"""Regenerate the tables in docs/ that come from the code, in place.

    python scripts/update_docs.py          # rewrite the generated blocks
    python scripts/update_docs.py --check  # exit 1 if any block is out of date

A generated block sits between `<!-- generated: scripts/NAME.py -->` and `<!-- end generated -->`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"(<!-- generated: (scripts/[\w.]+) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL
)


def output_of(script: str) -> str:
    # The script names come from our own docs, not from input.
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / script)], capture_output=True, text=True, check=True
    )
    return done.stdout


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        updated = BLOCK.sub(lambda m: m[1] + output_of(m[2]) + m[4], text)
        if updated != text:
            stale.append(doc.relative_to(ROOT))
            if not check:
                doc.write_text(updated)
    verb = "out of date" if check else "updated"
    for path in stale:
        print(f"{path}: {verb}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
