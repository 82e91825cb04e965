"""The errors the app shows as a message in the page rather than as a traceback."""

from __future__ import annotations

from spec_core.data.datasets import DatasetError
from spec_core.models.registry import ModelLoadError


class DataGone(LookupError):
    """The data the settings name (an upload in a link) is not on this server any more."""


#: Errors a user's input or choice can cause (a file, a model name, a setting, a link); the
#: pages catch them and show them as a message, never as a traceback.
SHOWN_AS_MESSAGE = (
    # a bad value, file or setting: the core's checks name it (spec_app.policy's ModelRefused
    # for a model this server does not load is one)
    ValueError,
    # an upload that cannot be read as a dataset (a ValueError too; named for the reader)
    DatasetError,
    # a model that cannot be loaded: unknown, or weights that cannot be downloaded here
    ModelLoadError,
    # a model that fails on the user's data (NaN/inf, a wrong shape), the device the user
    # chose (CUDA out of memory), an embedding gone from the cache ("press Compare again")
    RuntimeError,
    # an upload or a cache entry that cannot be read or written (a file that vanished, a full
    # disk)
    OSError,
    # data a link names that is gone (DataGone, spec_core.data.uploads.UploadGone)
    LookupError,
    # data or settings too large for this server's memory
    MemoryError,
)


def message(err: BaseException) -> str:
    """What a user is shown of an error: its text, except that a file system error shows its
    reason only (its text names the server's files: the cache, temporary files)."""
    if isinstance(err, OSError) and err.strerror:
        return f"a file on this server could not be read or written: {err.strerror}"
    return str(err)
