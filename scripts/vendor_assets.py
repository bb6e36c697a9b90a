"""Fetch the dashboard's browser libraries from the npm registry into the package.

    python scripts/vendor_assets.py           # write the pinned versions below
    python scripts/vendor_assets.py --check   # the committed files match the pinned tarballs

The files are committed: installing or running Tenantry never fetches anything. To upgrade a
library, change its version here, run the script, and read the library's changelog for what a
strict Content-Security-Policy needs (docs/dashboard.md, "Assets").

Each tarball is checked against the registry's sha512 `integrity` before anything is written.
The licence travels with the files; where a package ships no licence file (Alpine's CSP build),
the licence its package.json declares is written out with its author.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = "https://registry.npmjs.org"

MIT = """MIT License

Copyright (c) {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    # path inside the tarball (under package/) -> file name in `dest`
    files: dict[str, str]
    dest: Path
    # shown in the written VERSION file: why this one
    note: str = ""


STATIC = ROOT / "src" / "tenantry" / "web" / "static" / "vendor"
ASSETS = [
    Asset(
        "htmx.org",
        "2.0.11",
        {"dist/htmx.min.js": "htmx.min.js", "LICENSE": "LICENSE"},
        STATIC / "htmx",
        "2.x line: configured by the htmx-config meta tag, no eval, no inline styles",
    ),
    Asset(
        "@alpinejs/csp",
        "3.17.4",
        {"dist/cdn.min.js": "alpine-csp.min.js"},
        STATIC / "alpine",
        "Alpine's CSP build: components are registered from static/app.js, no eval",
    ),
    Asset(
        "htmx-ext-sse",
        "2.2.4",
        {"dist/sse.min.js": "sse.min.js", "LICENSE": "LICENSE"},
        STATIC / "htmx-ext-sse",
        "htmx's Server-Sent Events extension: the audit page's live view (EventSource)",
    ),
    Asset(
        "chart.js",
        "4.6.2",
        {"dist/chart.umd.min.js": "chart.umd.min.js", "LICENSE.md": "LICENSE.md"},
        STATIC / "chartjs",
    ),
    # For the browser tests only: not shipped in the package.
    Asset(
        "axe-core",
        "4.14.1",
        {"axe.min.js": "axe.min.js", "LICENSE": "LICENSE"},
        ROOT / "tests" / "web" / "vendor" / "axe-core",
        "accessibility checks in the browser tests; not part of the package",
    ),
]


def _get(url: str) -> bytes:
    if not url.startswith("https://"):
        raise ValueError(f"refusing a non-https URL: {url}")
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https only, above)
        data: bytes = response.read()
    return data


def fetch(asset: Asset) -> dict[str, bytes]:
    """The asset's files (and a licence), read from its verified tarball."""
    meta = json.loads(_get(f"{REGISTRY}/{asset.package}/{asset.version}"))
    tarball = _get(meta["dist"]["tarball"])
    algorithm, _, expected = meta["dist"]["integrity"].partition("-")
    if algorithm != "sha512":
        raise ValueError(f"{asset.package}: unexpected integrity algorithm {algorithm}")
    actual = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if actual != expected:
        raise ValueError(f"{asset.package}@{asset.version}: tarball does not match its integrity")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for inside, name in asset.files.items():
            member = archive.extractfile(f"package/{inside}")
            if member is None:
                raise ValueError(f"{asset.package}: {inside} is not a file")
            out[name] = member.read()
    if not any(name.upper().startswith("LICENSE") for name in out):
        declared = meta.get("license")
        if declared != "MIT":
            raise ValueError(f"{asset.package}: no licence file and licence {declared!r}")
        author = meta.get("author")
        holder = author.get("name") if isinstance(author, dict) else author
        out["LICENSE"] = MIT.format(holder=f"{holder} and contributors").encode()
    out["VERSION"] = (
        f"{asset.package}@{asset.version}\n"
        f"from {meta['dist']['tarball']}\n"
        f"integrity {meta['dist']['integrity']}\n"
        f"licence {meta.get('license')}\n" + (f"{asset.note}\n" if asset.note else "")
    ).encode()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    stale = []
    for asset in ASSETS:
        files = fetch(asset)
        for name, data in files.items():
            path = asset.dest / name
            if args.check:
                if not path.exists() or path.read_bytes() != data:
                    stale.append(str(path.relative_to(ROOT)))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path.relative_to(ROOT)} ({len(data):,} bytes)")
    if stale:
        print("differ from the pinned versions:", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
