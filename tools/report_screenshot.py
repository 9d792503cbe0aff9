"""A screenshot of a run's report.html through headless Chromium, e.g. for the README.

    python tools/report_screenshot.py RUN docs/report.png [--width 1200] [--height 3000] [--crop 1900] [--scale 0.5]

RUN is a run folder holding report.html (``hapi-runner report RUN`` writes
it) or the path of an HTML file. Needs ``chromium`` (Debian's package) or
``chromium-browser``/``google-chrome`` on PATH, and Pillow for --crop/--scale.
The browser runs with a private profile and no network use of its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> Optional[str]:
    """The first Chromium-like browser on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_path: str, png_path: str, width: int = 1200, height: int = 3000, timeout: float = 120) -> str:
    """Renders ``html_path`` headless into ``png_path`` (``width`` x ``height`` pixels); returns ``png_path``."""
    browser = find_browser()
    if browser is None:
        raise SystemExit("no Chromium found: apt-get install -y chromium (Debian), then run again.")
    with tempfile.TemporaryDirectory(prefix="report-shot-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={os.path.abspath(png_path)}",
                   f"--window-size={width},{height}", "file://" + os.path.abspath(html_path)]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if done.returncode != 0 or not os.path.isfile(png_path):
        tail = done.stdout.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{browser} exited with {done.returncode} and wrote no screenshot: {' | '.join(tail)}")
    return png_path


def shrink(png_path: str, crop_height: Optional[int], scale: float) -> None:
    """Drops the blank space below the page, keeps the top ``crop_height`` pixels and scales by ``scale``."""
    from PIL import Image, ImageChops

    with Image.open(png_path) as picture:
        picture = picture.convert("RGB")
    content = ImageChops.difference(picture, Image.new("RGB", picture.size, "white")).getbbox()
    if content:
        picture = picture.crop((0, 0, picture.width, min(picture.height, content[3] + 16)))
    if crop_height:
        picture = picture.crop((0, 0, picture.width, min(crop_height, picture.height)))
    if scale != 1:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.LANCZOS)
    picture = picture.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    picture.save(png_path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder holding report.html, or an HTML file")
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--crop", type=int, default=None, help="keep the top N pixels")
    parser.add_argument("--scale", type=float, default=1.0, help="resize by this factor after cropping")
    args = parser.parse_args(argv)
    page = os.path.join(args.run, "report.html") if os.path.isdir(args.run) else args.run
    if not os.path.isfile(page):
        print(f"report_screenshot: '{page}' does not exist; write it with: hapi-runner report {args.run}", file=sys.stderr)
        return 2
    screenshot(page, args.output, args.width, args.height)
    if args.crop or args.scale != 1:
        shrink(args.output, args.crop, args.scale)
    print(f"{args.output}: {os.path.getsize(args.output) // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
