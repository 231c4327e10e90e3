"""One normaliser per platform (SPEC §4), each reading its own raw feed shape."""

from __future__ import annotations

from sona.errors import DataError
from sona.ingest.normalizers.apple_tv_plus import AppleTvPlusNormalizer
from sona.ingest.normalizers.base import FieldError, Normalizer
from sona.ingest.normalizers.disney_plus import DisneyPlusNormalizer
from sona.ingest.normalizers.hbo_max import HboMaxNormalizer
from sona.ingest.normalizers.hulu import HuluNormalizer
from sona.ingest.normalizers.netflix import NetflixNormalizer
from sona.ingest.normalizers.paramount_plus import ParamountPlusNormalizer
from sona.ingest.normalizers.peacock import PeacockNormalizer
from sona.ingest.normalizers.prime_video import PrimeVideoNormalizer
from sona.ingest.normalizers.youtube import YoutubeNormalizer
from sona.ingest.records import CanonicalRecord, RawRecord

NORMALIZERS: dict[str, Normalizer] = {n.platform: n for n in (
    NetflixNormalizer(), PrimeVideoNormalizer(), DisneyPlusNormalizer(), HuluNormalizer(),
    AppleTvPlusNormalizer(), HboMaxNormalizer(), PeacockNormalizer(), ParamountPlusNormalizer(),
    YoutubeNormalizer(),
)}


def get_normalizer(platform: str) -> Normalizer:
    """The normaliser of ``platform``.

    Raises:
        DataError: no normaliser for that platform (crave and bbc_iplayer have none).
    """
    try:
        return NORMALIZERS[platform]
    except KeyError:
        raise DataError(f"no normaliser for platform {platform!r}; "
                        f"available: {sorted(NORMALIZERS)}") from None


def normalize(raw: RawRecord) -> CanonicalRecord:
    """Canonical form of one raw record via its platform's normaliser."""
    return get_normalizer(raw.platform).normalize(raw)


__all__ = [
    "NORMALIZERS", "AppleTvPlusNormalizer", "DisneyPlusNormalizer", "FieldError",
    "HboMaxNormalizer", "HuluNormalizer", "NetflixNormalizer", "Normalizer",
    "ParamountPlusNormalizer", "PeacockNormalizer", "PrimeVideoNormalizer", "YoutubeNormalizer",
    "get_normalizer", "normalize",
]
