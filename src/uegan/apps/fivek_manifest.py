"""The manifest of a prepared FiveK split: what every output holds and where it came from.

``manifest.json`` in the output folder records the conversion settings, the counts, the missing
files and, for every output, its SHA-256 and its source's name, size, modification time and
SHA-256 (see :mod:`uegan.apps.fivek`, "Idempotence"). This module reads and writes it and decides
whether a source is still the file the manifest saw; :mod:`uegan.apps.fivek_prepare` does the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uegan.apps.fivek import MANIFEST_FORMAT, MANIFEST_NAME, PROPHOTO_GAMMA, RESAMPLE, SHORT_EDGE, TEST_SIZE
from uegan.errors import UserError
from uegan.io.files import atomic_path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def conversion_settings() -> dict[str, Any]:
    """Everything that changes the pixels of an output (the validation choice does not)."""
    return {"short_edge": SHORT_EDGE, "test_size": TEST_SIZE, "resample": RESAMPLE,
            "prophoto_decoding": f"gamma {PROPHOTO_GAMMA}", "adaptation": "bradford D50->D65",
            "rounding": "floor(v*255+0.5)", "conversion_version": 1}


def source_entry(source_set: str, path: Path, stat: os.stat_result, digest: str) -> dict[str, Any]:
    """The manifest's record of the source file an output was computed from."""
    return {"set": source_set, "name": path.name, "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "sha256": digest}


def source_unchanged(source_set: str, path: Path, recorded: dict) -> tuple[bool, dict]:
    """Whether ``path`` is the source the manifest saw (size and time, else content hash), and
    the record to keep (with the new time when the file was only touched)."""
    stat = path.stat()
    if recorded.get("set") != source_set or recorded.get("name") != path.name:
        return False, recorded
    if recorded.get("size") == stat.st_size and recorded.get("mtime_ns") == stat.st_mtime_ns:
        return True, recorded
    if recorded.get("size") == stat.st_size and recorded.get("sha256") == sha256_file(path):
        return True, dict(recorded, mtime_ns=stat.st_mtime_ns)  # touched, not changed
    return False, recorded


@dataclass(frozen=True)
class EarlierManifest:
    """The manifest an earlier run left in the output folder (empty when there is none)."""

    files: dict[str, dict] = field(default_factory=dict)   # output -> entry
    same_settings: bool = False                            # written with today's conversion

    @property
    def reusable(self) -> dict[str, dict]:
        """The entries whose outputs may be up to date (none after a change of settings)."""
        return self.files if self.same_settings else {}


def read_manifest(out_root: Path) -> EarlierManifest:
    """The earlier run's manifest in ``out_root``; a UserError if it is there but unreadable."""
    path = out_root / MANIFEST_NAME
    if not path.is_file():
        return EarlierManifest()
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: unreadable manifest ({error}); move it away and pass "
                        f"--overwrite to rebuild") from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path}: not a manifest of uegan prepare-fivek")
    return EarlierManifest(dict(manifest.get("files", {})),
                           manifest.get("settings") == conversion_settings())


def write_manifest(out_root: Path, manifest: dict[str, Any]) -> bool:
    """Write ``manifest`` unless the file already holds exactly it; True when it was written."""
    path = out_root / MANIFEST_NAME
    text = json.dumps(manifest, indent=1, sort_keys=False) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    out_root.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return True
