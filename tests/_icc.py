"""Small ICC profiles made by the tests (version 2, RGB matrix/shaper): the colorants and tone
curves are what a colour-managed reader must act on, the description text is what it must not."""

from __future__ import annotations

import struct

import numpy as np

D50_WHITE = (0.9642, 1.0, 0.8249)


def s15(value: float) -> bytes:
    """An ICC s15Fixed16Number."""
    return struct.pack(">i", round(value * 65536))


def xyz_tag(values) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(s15(v) for v in values)


def gamma_curve(gamma: float) -> bytes:
    """A 'curv' tag holding one gamma (u8Fixed8Number)."""
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def matrix_shaper_profile(description: str, colorants: np.ndarray, curve: bytes | None,
                          white=D50_WHITE) -> bytes:
    """The profile: D50 ``colorants`` (columns r, g, b), the same ``curve`` tag on every channel
    (``None``: no curves), the media ``white`` point."""
    text = description.encode("ascii") + b"\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 78
    tags = [(b"desc", desc), (b"wtpt", xyz_tag(white)),
            (b"rXYZ", xyz_tag(colorants[:, 0])), (b"gXYZ", xyz_tag(colorants[:, 1])),
            (b"bXYZ", xyz_tag(colorants[:, 2])), (b"cprt", b"text\0\0\0\0none\0")]
    if curve is not None:
        tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"test" + struct.pack(">I", 0x02100000)
              + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + s15(D50_WHITE[0]) + s15(D50_WHITE[1]) + s15(D50_WHITE[2]) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data
