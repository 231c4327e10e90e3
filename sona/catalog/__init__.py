"""The canonical content catalog: pydantic schema, SQLAlchemy tables and the store."""

from sona.catalog.schema import (
    PLATFORMS,
    Availability,
    CastMember,
    ContentItem,
    Credits,
    ExternalIds,
    Images,
    SeriesInfo,
    utcnow,
)
from sona.catalog.store import (
    DEFAULT_URL,
    SYSTEM,
    Actor,
    AuditRecord,
    CatalogConflictError,
    CatalogStore,
)

__all__ = [
    "DEFAULT_URL", "PLATFORMS", "SYSTEM", "Actor", "AuditRecord", "Availability", "CastMember",
    "CatalogConflictError", "CatalogStore", "ContentItem", "Credits", "ExternalIds", "Images",
    "SeriesInfo", "utcnow",
]
