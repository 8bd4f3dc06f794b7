"""``uegan serve`` in a real browser: Debian's headless Chromium, driven through chromedriver by
the pieces of ``docs/make_serve_screenshot.py`` (the script that makes the README's picture).

Two photos and a bad file are chosen on the page with two checkpoints loaded; the page shows both
results of each photo with their times, the reference's scores, the bad file's message; a
download is the file ``uegan enhance`` writes; a second tab sees only its own photo; nothing is
loaded from anywhere but the server.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.support.ui import Select
from skimage.metrics import peak_signal_noise_ratio

from _serve_utils import pixels, serving, write_checkpoints, write_photos
from conftest import REPO
from uegan.cli import main

SCRIPT = REPO / "docs" / "make_serve_screenshot.py"
_spec = importlib.util.spec_from_file_location("make_serve_screenshot", SCRIPT)
browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser)

pytestmark = pytest.mark.skipif(browser.chromium_binary() is None,
                                reason="no chromium binary (apt-get install chromium chromium-driver)")


# what the server tells this tab's session (the page's own request, made from the page)
JOBS = ("return fetch('/api/jobs?session=' + state.session).then(r => r.json())"
        ".then(answer => [state.session, answer.jobs.map(job => job.name)]);")


def _cards(driver) -> dict[str, object]:
    return {card.find_element("css selector", ".name").text: card
            for card in driver.find_elements("css selector", ".card")}


def test_the_page_enhances_compares_scores_and_downloads(tmp_path):
    checkpoints = write_checkpoints(tmp_path)
    photos = write_photos(tmp_path / "photos")
    bad = tmp_path / "photos" / "broken.jpg"
    bad.write_text("not a photo")
    assert main(["enhance", str(photos["jpeg"]), "-c", str(checkpoints[0]), "-o",
                 str(tmp_path / "cli"), "--no-progress"]) == 0
    expected = tmp_path / "cli" / photos["jpeg"].name
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    with serving(checkpoints) as app:
        driver = browser.chromium_driver(downloads)
        try:
            browser.open_page(driver, app.url)
            boxes = driver.find_elements("css selector", "#models input[type=checkbox]")
            assert [box.is_selected() for box in boxes] == [True, True]
            browser.choose(driver, "#references", [photos["reference"]])
            browser.choose(driver, "#photos", [photos["jpeg"], photos["png"], bad])
            browser.wait_until_settled(driver, 3)
            cards = _cards(driver)
            assert sorted(cards) == ["broken.jpg", "first.jpg", "second.png"]
            broken = cards["broken.jpg"]
            assert "failed" in broken.get_attribute("class")
            assert broken.find_element("css selector", ".error").text == \
                "broken.jpg: not an image, or an unsupported format"
            for name in ("first.jpg", "second.png"):
                card = cards[name]
                assert "done" in card.get_attribute("class")
                rows = card.find_elements("css selector", ".results tbody tr")
                scored = name == "second.png"  # the photo with a reference has a row for itself
                assert [row.find_element("css selector", "td").text for row in rows] == \
                    ["original"] * scored + ["published (uegan)", "shifted (uegan)"]
                times = [row.find_element("css selector", ".time").text for row in rows[scored:]]
                assert all(re.fullmatch(r"\d+\.\d\d s", text) for text in times), times
                assert len(card.find_elements("css selector", "a.download")) == 2
                for side in ("img.left", "img.right"):  # both pictures loaded
                    assert card.find_element("css selector", side).get_attribute("naturalWidth") != "0"
            assert cards["first.jpg"].find_element("css selector", ".size").text == "64 × 96"
            psnr_shown = cards["second.png"].find_element("css selector", "tbody tr .psnr").text
            label, original = pixels(photos["reference"]), pixels(photos["png"])
            psnr = peak_signal_noise_ratio(label[4:-4, 4:-4], original[4:-4, 4:-4], data_range=255)
            assert psnr_shown == f"{psnr:.2f}"

            card = cards["second.png"]  # compare the two checkpoints
            Select(card.find_element("css selector", ".pick-left")).select_by_visible_text("shifted")
            assert card.find_element("css selector", ".tag-left").text == "shifted"
            assert "image=1" in card.find_element("css selector", "img.left").get_attribute("src")
            assert "image=0" in card.find_element("css selector", "img.right").get_attribute("src")

            cards["first.jpg"].find_element("css selector", "a.download").click()
            downloaded = browser.wait_for_download(downloads)
            shot = browser.save_screenshot(driver, tmp_path / "serve-page.png")

            first_tab = driver.current_window_handle  # a second tab has a session of its own
            driver.switch_to.new_window("tab")
            browser.open_page(driver, app.url)
            browser.choose(driver, "#photos", [photos["png"]])
            browser.wait_until_settled(driver, 1)
            assert list(_cards(driver)) == ["second.png"]
            second_session, second_jobs = driver.execute_script(JOBS)
            driver.switch_to.window(first_tab)
            first_session, first_jobs = driver.execute_script(JOBS)
            assert first_session != second_session
            assert second_jobs == ["second.png"]
            assert sorted(first_jobs) == ["broken.jpg", "first.jpg", "second.png"]
            sources = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
        finally:
            driver.quit()
    assert downloaded.name == "first-published.jpg"
    assert downloaded.read_bytes() == expected.read_bytes()
    assert np.array_equal(pixels(downloaded), pixels(expected))
    assert sources and all(source.startswith(app.url) for source in sources)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.width >= 800
