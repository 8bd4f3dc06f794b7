"""Make the screenshot of `uegan serve` in the README, with a real headless Chromium.

It serves two checkpoints of a `uegan demo` folder (the published `uegan` and `uegan-curve`),
drops two of the demo's held-out photos on the page with their originals as references, waits
for the results, shows `uegan-curve` beside each original and saves the page as a small PNG
(256 colours) meant to be committed:

    uegan demo --out /tmp/demo --seed 0
    python docs/make_serve_screenshot.py /tmp/demo docs/serve-page.png

The browser pieces (:func:`chromium_driver`, :func:`open_page`, :func:`choose`,
:func:`wait_until_settled`, :func:`save_screenshot`) are the ones `tests/test_serve_browser.py`
drives the page with. They use Debian's `chromium` and `chromium-driver` (`apt-get install
chromium chromium-driver`); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

WIDTH, HEIGHT = 1100, 1240
SETTLED = ("const cards = document.querySelectorAll('.card');"
           "return cards.length === arguments[0] && [...cards].every("
           "c => c.classList.contains('done') || c.classList.contains('failed'));")


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_driver(download_dir: Path, width: int = WIDTH, height: int = HEIGHT):
    """A headless Chromium driven through Debian's chromedriver; downloads go to download_dir."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_binary = chromium_binary(), shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        raise SystemExit("needs Debian's chromium and chromium-driver: "
                         "apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--force-device-scale-factor=1",
                     "--no-first-run", "--disable-extensions", "--disable-sync",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-default-apps", "--hide-scrollbars"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=driver_binary), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def open_page(driver, url: str, timeout: float = 20.0) -> None:
    """Load the page and wait until it has its session and checkpoints."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1'"))


def choose(driver, selector: str, paths: list[Path]) -> None:
    """Pick files in the page's file input ``selector`` (``#photos`` or ``#references``)."""
    driver.find_element("css selector", selector).send_keys("\n".join(str(p) for p in paths))


def wait_until_settled(driver, count: int, timeout: float = 60.0) -> None:
    """Wait until the page shows ``count`` photos, each done or failed."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: d.execute_script(SETTLED, count))


def wait_for_download(folder: Path, timeout: float = 20.0) -> Path:
    """The first file that finished downloading into ``folder``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [p for p in folder.iterdir() if not p.name.endswith(".crdownload")]
        if files and not any(p.name.endswith(".crdownload") for p in folder.iterdir()):
            return files[0]
        time.sleep(0.1)
    raise TimeoutError(f"nothing was downloaded into {folder} in {timeout:g} s")


def save_screenshot(driver, path: Path, colours: int | None = None) -> Path:
    """The visible page as a PNG; with ``colours``, reduced to that many (a small file)."""
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    if colours:
        with Image.open(path) as shot:
            small = shot.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT,
                                                 dither=Image.Dither.FLOYDSTEINBERG)
        small.save(path, optimize=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", type=Path, help="a `uegan demo` output folder")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--photos", default="coffee-1,chelsea-2",
                        help="held-out photos of the demo, comma-separated")
    args = parser.parse_args()

    from selenium.webdriver.support.ui import Select

    from uegan.apps.serve import ServeApp, ServeConfig, load_models

    checkpoints = tuple(args.demo / "run" / name / "generator.safetensors"
                        for name in ("uegan", "uegan-curve"))
    config = ServeConfig(checkpoints=checkpoints, port=0).check()
    names = args.photos.split(",")
    with tempfile.TemporaryDirectory() as downloads, ServeApp(config, load_models(config)) as app:
        driver = chromium_driver(Path(downloads))
        try:
            open_page(driver, app.url)
            choose(driver, "#references", [args.demo / "data/test/label" / f"{n}.png" for n in names])
            choose(driver, "#photos", [args.demo / "data/test/low" / f"{n}.png" for n in names])
            wait_until_settled(driver, len(names))
            for select in driver.find_elements("css selector", ".pick-right"):
                Select(select).select_by_visible_text("uegan-curve/generator")  # the recommended
            time.sleep(0.5)  # the pictures load
            save_screenshot(driver, args.out, colours=256)
        finally:
            driver.quit()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
