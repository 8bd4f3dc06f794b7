"""``uegan serve`` through its HTTP API: the same files as ``uegan enhance``, references scored,
limits that refuse oversize uploads and decompression bombs while the server goes on, no client
value that reaches the file system, tabs that never mix, and a temporary folder removed at exit."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import sys
import tempfile
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from _serve_utils import Client, pixels, serving, write_checkpoints, write_photos
from uegan.apps.serve.config import checkpoint_labels, exposure_warning
from uegan.apps.serve.store import Store, display_name, download_name, output_format
from uegan.cli import main


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def enhanced(checkpoints, photos, tmp_path_factory):
    """What ``uegan enhance`` writes for each photo and checkpoint: {(photo key, model): path}."""
    out = tmp_path_factory.mktemp("cli")
    results = {}
    for index, checkpoint in enumerate(checkpoints):
        folder = out / str(index)
        assert main(["enhance", str(photos["jpeg"]), str(photos["png"]), "-c", str(checkpoint),
                     "-o", str(folder), "--no-progress"]) == 0
        results[("jpeg", index)] = folder / photos["jpeg"].name
        results[("png", index)] = folder / photos["png"].name
    return results


def bomb_png(side: int = 50000) -> bytes:
    """A PNG of a few hundred bytes whose header declares side x side pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(1 << 16))) + chunk(b"IEND", b""))


def test_downloads_are_the_files_uegan_enhance_writes(checkpoints, photos, enhanced):
    with serving(checkpoints) as app:
        client = Client(app)
        session = client.session()
        for key in ("jpeg", "png"):
            status, answer = client.upload(session, photos[key].name, photos[key].read_bytes(), "0,1")
            assert status == 200, answer
        jobs = client.wait(session)
        for key in ("jpeg", "png"):
            job = jobs[photos[key].name]
            assert job["status"] == "done" and job["error"] is None
            assert [r["model"] for r in job["results"]] == [0, 1]
            assert all(r["seconds"] > 0 for r in job["results"])
            for model in (0, 1):
                status, data, headers = client.download(session, job["id"], model)
                assert status == 200
                assert data == enhanced[(key, model)].read_bytes()
                assert "attachment" in headers["Content-Disposition"]
        assert jobs["first.jpg"]["size"] == [64, 96]  # the portrait, turned by its EXIF tag
        with Image.open(io.BytesIO(client.download(session, jobs["first.jpg"]["id"], 0)[1])) as jpeg:
            assert jpeg.format == "JPEG" and jpeg.info.get("icc_profile")
            assert jpeg.getexif()[0x013B] == "uegan test"
        assert not np.array_equal(pixels(enhanced[("png", 0)]), pixels(enhanced[("png", 1)]))


def test_a_session_zip_holds_every_result_as_downloaded(checkpoints, photos, enhanced):
    with serving(checkpoints) as app:
        client = Client(app)
        session = client.session()
        assert client.request("GET", "/api/zip", {"session": session})[0] == 404  # nothing yet
        client.upload(session, photos["jpeg"].name, photos["jpeg"].read_bytes(), "0,1")
        client.upload(session, photos["png"].name, photos["png"].read_bytes(), "1")
        client.wait(session)
        status, data, headers = client.request("GET", "/api/zip", {"session": session})
        assert status == 200 and headers["Content-Type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            contents = {name: bundle.read(name) for name in bundle.namelist()}
    assert sorted(contents) == ["first-published.jpg", "first-shifted.jpg", "second-shifted.png"]
    assert contents["first-published.jpg"] == enhanced[("jpeg", 0)].read_bytes()
    assert contents["first-shifted.jpg"] == enhanced[("jpeg", 1)].read_bytes()
    assert contents["second-shifted.png"] == enhanced[("png", 1)].read_bytes()


def test_references_give_the_published_metrics(checkpoints, photos, enhanced):
    with serving(checkpoints) as app:
        client = Client(app)
        session = client.session()
        status, answer = client.json("POST", "/api/references", {"session": session,
                                                                   "name": "second.png"},
                                     photos["reference"].read_bytes())
        assert status == 200
        client.upload(session, "second.png", photos["png"].read_bytes(), "0",
                      reference=answer["reference"])
        job = client.wait(session)["second.png"]
    label = pixels(photos["reference"])[4:-4, 4:-4]

    def expected(image: np.ndarray) -> dict[str, float]:
        image = image[4:-4, 4:-4]
        return {"psnr": peak_signal_noise_ratio(label, image, data_range=255),
                "ssim": structural_similarity(image, label, channel_axis=-1, data_range=255),
                "ciede2000": deltaE_ciede2000(rgb2lab(image), rgb2lab(label)).mean()}

    for name, value in expected(pixels(photos["png"])).items():
        assert job["input_scores"][name] == pytest.approx(value, abs=1e-6)
    for name, value in expected(pixels(enhanced[("png", 0)])).items():
        assert job["results"][0]["scores"][name] == pytest.approx(value, abs=1e-6)


def test_a_bad_file_fails_alone_with_one_message_that_names_it(checkpoints, photos):
    with serving(checkpoints[:1]) as app:
        client = Client(app)
        session = client.session()
        client.upload(session, "notes.jpg", b"this is not a photo")
        client.upload(session, "cut.jpg", photos["jpeg"].read_bytes()[:400])
        client.upload(session, "second.png", photos["png"].read_bytes())
        jobs = client.wait(session)
        root = str(app.store.root)
    assert jobs["notes.jpg"]["status"] == "failed"
    assert jobs["notes.jpg"]["error"] == "notes.jpg: not an image, or an unsupported format"
    assert jobs["cut.jpg"]["error"].startswith("cut.jpg: truncated or corrupt")
    assert all(root not in json.dumps(job) for job in jobs.values())
    assert jobs["second.png"]["status"] == "done"


def test_an_oversize_upload_is_refused_before_its_body_and_the_server_goes_on(checkpoints, photos):
    with serving(checkpoints[:1], max_upload_bytes=50_000) as app:
        client = Client(app)
        session = client.session()
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as raw:
            raw.sendall((f"POST /api/photos?session={session}&name=huge.tif HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{app.port}\r\nX-Uegan-Upload: 1\r\n"
                         f"Content-Length: 3000000000\r\n\r\n").encode())
            answer = raw.makefile("rb").read()  # answered without a byte of the 3 GB body sent
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 413")
        assert json.loads(body)["error"] == ("huge.tif: 2.8 GB is over the upload limit of "
                                             "49 KB (uegan serve --max-upload-mb)")
        assert list(app.store.root.rglob("*-input")) == []
        status, answer = client.upload(session, "second.png", photos["png"].read_bytes())
        assert status == 200
        assert client.wait(session)["second.png"]["status"] == "done"


def test_a_decompression_bomb_and_a_pixel_limit_fail_alone(checkpoints, photos):
    with serving(checkpoints[:1], max_pixels=5000) as app:
        client = Client(app)
        session = client.session()
        client.upload(session, "bomb.png", bomb_png())
        client.upload(session, "second.png", photos["png"].read_bytes())  # 96 x 64 = 6144 pixels
        jobs = client.wait(session)
        assert jobs["bomb.png"]["error"].startswith(
            "bomb.png: 50000 x 50000 = 2,500,000,000 pixels is over the limit of 5,000")
        assert jobs["second.png"]["error"].startswith(
            "second.png: 96 x 64 = 6,144 pixels is over the limit of 5,000")
    with serving(checkpoints[:1]) as app:  # the project's reader limit, by default
        client = Client(app)
        session = client.session()
        client.upload(session, "bomb.png", bomb_png())
        client.upload(session, "second.png", photos["png"].read_bytes())
        jobs = client.wait(session)
        assert "is over the limit of 200,000,000" in jobs["bomb.png"]["error"]
        assert jobs["second.png"]["status"] == "done"


_OPENED: list[str] | None = None  # the files opened while a test records (an audit hook)


def _record_opens(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


def test_dot_dot_in_any_field_reads_nothing_outside_the_temporary_folder(
        checkpoints, photos, tmp_path, monkeypatch):
    global _OPENED
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the server's folder in here
    (tmp_path / "tmp").mkdir()
    secret = b"SECRET-" + os.urandom(8).hex().encode()
    for place in (tmp_path / "tmp" / "secret.png", tmp_path / "secret.png"):
        place.write_bytes(secret)
    sys.addaudithook(_record_opens)
    png = photos["png"].read_bytes()
    with serving(checkpoints[:1]) as app:
        client = Client(app)
        session = client.session()
        status, answer = client.upload(session, "../../secret.png", png)
        assert status == 200 and answer["name"] == "secret.png"
        client.wait(session)
        hostile = [
            ("GET", "/../../secret.png", {}), ("GET", "/%2e%2e/%2e%2e/secret.png", {}),
            ("GET", "/page.js/../../secret.png", {}),
            ("GET", "/api/preview", {"session": "../../..", "job": "j1", "image": "input"}),
            ("GET", "/api/preview", {"session": session, "job": "../../secret.png", "image": "0"}),
            ("GET", "/api/preview", {"session": session, "job": "j1", "image": "../../secret.png"}),
            ("GET", "/api/download", {"session": session, "job": "j1", "model": "../secret.png"}),
            ("GET", "/api/download", {"session": session, "job": "j1/../../..", "model": "0"}),
            ("GET", "/api/jobs", {"session": "../s1"}), ("GET", "/api/zip", {"session": "../.."}),
            ("POST", "/api/photos", {"session": session, "name": "a.png",
                                     "reference": "../../secret.png"}),
            ("POST", "/api/photos", {"session": session, "name": "a.png", "models": "../0"}),
            ("POST", "/api/references", {"session": "../..", "name": "../../secret.png"}),
        ]
        _OPENED = []
        try:
            answers = [client.request(method, path, params, b"x" if method == "POST" else None)
                       for method, path, params in hostile]
            status, answer = client.json("POST", "/api/references",
                                         {"session": session, "name": "../../../secret.png"}, b"ref")
            client.upload(session, "..\\..\\secret.png", png, "0",
                          answer["reference"])
            jobs = client.wait(session)
        finally:
            opened, _OPENED = _OPENED, None
        root = app.store.root
    assert [status for status, _, _ in answers] == [404] * len(hostile)
    assert all(secret not in body for _, body, _ in answers)
    assert all(secret not in json.dumps(job).encode() for job in jobs.values())
    assert (tmp_path / "secret.png").read_bytes() == secret  # never written either
    assert (tmp_path / "tmp" / "secret.png").read_bytes() == secret
    library = (sys.prefix, sys.base_prefix, "/proc/", "/sys/", "/dev/")
    outside = [path for path in opened if not os.path.realpath(path).startswith(str(root) + os.sep)
               and not path.startswith(library)]
    assert outside == []
    assert any(path.startswith(str(root)) for path in opened)  # the recording saw the uploads


def test_tabs_never_see_each_others_photos(checkpoints, photos, enhanced):
    with serving(checkpoints[:1]) as app:
        client = Client(app)
        first, second = client.session(), client.session()
        assert first != second
        client.upload(first, "first.jpg", photos["jpeg"].read_bytes())
        client.upload(second, "second.png", photos["png"].read_bytes())
        mine, theirs = client.wait(first), client.wait(second)
        assert list(mine) == ["first.jpg"] and list(theirs) == ["second.png"]
        mine_file = client.download(first, mine["first.jpg"]["id"], 0)[1]
        theirs_file = client.download(second, theirs["second.png"]["id"], 0)[1]
        assert mine_file == enhanced[("jpeg", 0)].read_bytes()
        assert theirs_file == enhanced[("png", 0)].read_bytes()
        assert client.request("GET", "/api/jobs", {"session": "made-up"})[0] == 404
        archive = client.request("GET", "/api/zip", {"session": second})[1]
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            assert bundle.namelist() == ["second-published.png"]


def test_requests_from_other_sites_are_refused(checkpoints):
    with serving(checkpoints[:1]) as app:
        client = Client(app)
        status, data, headers = client.request("GET", "/", headers={"Host": "evil.example"})
        assert status == 403 and b"evil.example" in data
        assert client.request("POST", "/api/session", headers={"X-Uegan-Upload": ""})[0] == 403
        status, page, headers = client.request("GET", "/")
        assert status == 200 and b"Drop photos here" in page
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert b"http" not in page  # nothing loaded from elsewhere
        assert b"http" not in client.request("GET", "/page.js")[1]


def test_the_temporary_folder_is_removed_on_close(checkpoints, photos):
    with serving(checkpoints[:1]) as app:
        client = Client(app)
        session = client.session()
        client.upload(session, "second.png", photos["png"].read_bytes())
        client.wait(session)
        root = app.store.root
        assert len(list(root.rglob("*"))) > 2
        assert oct(root.stat().st_mode & 0o777) == "0o700"
    assert not root.exists()


def test_names_from_the_client_are_labels_never_paths():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\IMG_1.JPG") == "IMG_1.JPG"
    assert display_name("..") == "photo" and display_name("a\x00b\n.png") == "ab.png"
    assert output_format("IMG_1.JPG") == "jpeg" and output_format("scan.tif") == "tiff"
    assert output_format("notes.txt") == "png"  # as uegan enhance: name.txt -> name.txt.png
    assert (download_name("my photo (1).jpeg", "run/uegan-curve", "jpeg")
            == "my_photo_1-run_uegan-curve.jpg")


def test_labels_and_the_warning_for_other_hosts(tmp_path):
    paths = (tmp_path / "uegan" / "generator.safetensors", tmp_path / "curve" / "generator.safetensors",
             tmp_path / "other.pth")
    assert checkpoint_labels(paths) == ("uegan/generator", "curve/generator",
                                        f"{tmp_path.name}/other")
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert exposure_warning(host) is None
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.org"):
        assert "anyone who can reach it" in exposure_warning(host)


def test_each_photo_says_its_place_in_line_and_its_steps(tmp_path):
    store = Store(tmp_path)
    tab, other = store.new_session(), store.new_session()
    reference = store.new_reference(tab, "label.png")
    first = store.new_job(other, "a.jpg", (0, 1), None)
    second = store.new_job(tab, "b.jpg", (0,), None)
    third = store.new_job(tab, "c.png", (0, 1), reference)
    for session, job in ((other, first), (tab, second), (tab, third)):
        store.queued(session, job)
    first.status, first.stage, first.steps_done = "running", "enhancing with A (1 of 2)", 1
    shown = {job["name"]: job for job in store.snapshot(tab)}
    assert list(shown) == ["b.jpg", "c.png"]  # the other tab's photo is not shown
    assert shown["b.jpg"]["stage"] == "waiting (1 ahead)" and shown["b.jpg"]["progress"] == 0
    assert shown["c.png"]["stage"] == "waiting (2 ahead)"
    assert store.snapshot(other)[0]["stage"] == "enhancing with A (1 of 2)"
    assert store.snapshot(other)[0]["progress"] == 1 / 3  # read, A, B
    third.steps_done = 3
    assert store.snapshot(tab)[1]["progress"] == 3 / 4  # read, A, B, scores
