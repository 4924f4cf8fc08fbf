"""sa_depot: file attachments for SQLAlchemy that are as safe as their rows.

Importing the package only defines names: nothing is configured, no listener is installed.
"""

from sa_depot.exceptions import (
    ConfigurationError,
    CorruptMetadata,
    DepotError,
    FileNotFound,
    InvalidFileId,
    InvalidKey,
    StorageError,
    StorageNotFound,
    UnsupportedContent,
    ValidationFailed,
    WrongUploadType,
)
from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "CorruptMetadata",
    "DepotError",
    "DepotManager",
    "FileIntent",
    "FileNotFound",
    "InvalidFileId",
    "InvalidKey",
    "StorageError",
    "StorageNotFound",
    "UnsupportedContent",
    "ValidationFailed",
    "WrongUploadType",
    "__version__",
]
