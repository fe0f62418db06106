"""Open a report in headless Chromium and read back what the page's own check script found:
how many figures it has and whether each one decoded (non-zero natural size)."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000")
MARKER = re.compile(r"<div[^>]*id=\"pb-check\"[^>]*>")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def check_page(path: str | Path, timeout: float = 120) -> dict:
    """``{"images", "broken", "errors", "img_tags", "dom_bytes"}`` of the page at ``path`` as
    rendered by headless Chromium (``--dump-dom`` after the load event). Raises RuntimeError
    when Chromium is missing, fails, or the page's check marker is absent."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium; "
                           "`make test` installs it)")
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="pb-chromium-") as profile:
        out = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                             capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"chromium exited {out.returncode}: {out.stderr.strip()[-500:]}")
    dom = out.stdout
    m = MARKER.search(dom)
    if m is None:
        raise RuntimeError("the page's check marker (#pb-check) is missing: its script did not "
                           "run or the page did not finish loading")
    attrs = dict(re.findall(r'data-(\w+)="(\d+)"', m.group(0)))
    return {"images": int(attrs.get("images", -1)), "broken": int(attrs.get("broken", -1)),
            "errors": int(attrs.get("errors", -1)), "img_tags": len(re.findall(r"<img\b", dom)),
            "dom_bytes": len(dom)}
