"""The error every image reader and writer raises for a file it cannot handle."""

from __future__ import annotations

from uegan.errors import UserError


class PhotoError(UserError):
    """A photo that cannot be read or written: the message names the file and the reason."""
