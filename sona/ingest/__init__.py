"""Ingestion: raw platform feeds -> normalised records -> resolved, scored catalog items.

See SPEC §4. Feeds come from :func:`generate_feeds` (seeded, with ground truth), each
platform's :mod:`~sona.ingest.normalizers` module parses its own shape,
:class:`EntityResolver` links records to entities, :class:`IngestPipeline` stores them and
:class:`WebhookService` keeps the catalog current from signed platform events.
"""

from sona.ingest.evaluation import (
    LookalikeScore,
    ResolutionReport,
    RuleScore,
    evaluate_resolution,
    record_links,
)
from sona.ingest.feeds import FeedConfig, Feeds, Work, build_works, generate_feeds
from sona.ingest.merge import apply_record, item_from_records, merge_items, remove_platform
from sona.ingest.normalizers import NORMALIZERS, get_normalizer, normalize
from sona.ingest.pipeline import (
    IndexUpdate,
    IndexUpdater,
    IngestPipeline,
    IngestReport,
    content_text,
    embed_items,
    load_resolver,
)
from sona.ingest.processor import EVENT_TYPES, EventProcessor
from sona.ingest.quality import (
    QualityConfig,
    QualityReport,
    QualityScore,
    quality_report,
    quality_score,
    recalculate_quality,
)
from sona.ingest.records import CanonicalRecord, DeepLinks, OfferTerms, RawRecord
from sona.ingest.resolution import (
    MATCH_RULES,
    RULES,
    BatchResolution,
    EntityResolver,
    Resolution,
    ResolverConfig,
    identity_text,
)
from sona.ingest.webhooks import (
    WebhookConfig,
    WebhookError,
    WebhookService,
    event_hash,
    sign,
    verify_signature,
)

__all__ = [
    "EVENT_TYPES", "MATCH_RULES", "NORMALIZERS", "RULES", "BatchResolution", "CanonicalRecord",
    "DeepLinks", "LookalikeScore", "merge_items", "record_links",
    "EntityResolver", "EventProcessor", "FeedConfig", "Feeds", "IndexUpdate", "IndexUpdater",
    "IngestPipeline", "IngestReport", "OfferTerms", "QualityConfig", "QualityReport",
    "QualityScore", "RawRecord", "Resolution", "ResolutionReport", "ResolverConfig", "RuleScore",
    "WebhookConfig", "WebhookError", "WebhookService", "Work", "apply_record", "build_works",
    "content_text", "embed_items", "evaluate_resolution", "event_hash", "generate_feeds",
    "get_normalizer", "identity_text", "item_from_records", "load_resolver", "normalize",
    "quality_report", "quality_score", "recalculate_quality", "remove_platform", "sign",
    "verify_signature",
]
