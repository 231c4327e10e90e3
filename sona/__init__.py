"""SONA: a recommendation and search research platform, real end to end."""

from sona.errors import ConfigError, DataError, NotFittedError, SonaError, UnknownIdError
from sona.types import PAD_ID, Recommendations

__version__ = "0.1.0"

__all__ = [
    "PAD_ID",
    "ConfigError",
    "DataError",
    "NotFittedError",
    "Recommendations",
    "SonaError",
    "UnknownIdError",
    "__version__",
]
