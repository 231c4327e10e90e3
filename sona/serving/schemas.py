"""Pydantic request/response schemas of the SONA personalisation API (SPEC §2.10).

Requests forbid unknown fields, so a typo (``"limt": 5``) is a 400 naming the field
rather than a silently ignored knob. Ids may be sent as strings or integers (MovieLens ids
are integers, SPEC ids are UUID strings); they are matched against the model's id index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from sona.catalog.availability import WhereToWatch
from sona.catalog.schema import PLATFORMS
from sona.wire import INT, NOT_BLANK, Bool, Int, Number, Timestamp

TimeOfDay = Literal["morning", "afternoon", "evening", "night"]
DeviceType = Literal["tv", "mobile", "desktop", "tablet"]
# "fallback": the popularity list served while the model's ranking fails (resilience)
RecommendationType = Literal["collaborative", "content_based", "graph_based", "context_aware",
                             "hybrid", "cold_start", "fallback"]


#: the wire form of an id: 1-128 characters, not all blank, or an integer of at most 128 digits
_ID_SCHEMA = WithJsonSchema({"anyOf": [
    {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NOT_BLANK},
    {"type": "integer", "minimum": -(10**127 - 1), "maximum": 10**128 - 1}]})


def _id_text(value: Any) -> Any:
    # JSON integers are valid ids; booleans are not (True would become "True")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():  # 5.0 is the JSON integer 5
        return str(int(value))
    return value


UserId = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=128,
                                                            pattern=NOT_BLANK), _ID_SCHEMA]
ContentId = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=128,
                                                            pattern=NOT_BLANK), _ID_SCHEMA]


class _Request(BaseModel):
    # patterns run on Python's re, as the document's validators read them (Rust's regex, the
    # default, differs: `$` before a final newline, \x1c-\x1f as non-space)
    model_config = ConfigDict(extra="forbid", regex_engine="python-re", str_strip_whitespace=True)


class RecommendationContext(_Request):
    """Request context (SPEC §1 RecommendationContext)."""

    mood: str | None = Field(None, max_length=64, description="e.g. happy, sad, excited")
    time_of_day: TimeOfDay | None = None
    device_type: DeviceType | None = None
    viewing_with: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list,
                                                                     max_length=20)
    weekday: Annotated[int, Field(ge=0, le=6), *INT] | None = Field(
        None, description="0 = Monday ... 6 = Sunday")
    hour: Annotated[int, Field(ge=0, le=23), *INT] | None = Field(
        None,
                             description="local hour; takes precedence over time_of_day")


#: a platform filter: a canonical platform name (``sona.catalog.schema.PLATFORMS``); the
#: handler also takes the labels of ``sona.search.filters.PLATFORM_ALIASES`` ("Disney+")
PlatformName = Annotated[str, Field(min_length=1, max_length=32,
                                    json_schema_extra={"enum": list(PLATFORMS)})]

#: ISO 3166-1 alpha-2 region of a request's "where to watch" (None: "US")
Region = Annotated[str, Field(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$")]


class WatchFilters(_Request):
    """Availability filters of a list request (:mod:`sona.serving.where_to_watch`).

    ``platforms`` or ``available_now`` keep only items with an offer live now in
    ``region`` (on one of the platforms); the ranking runs among those items, so the list
    is still ``limit`` long. ``region`` alone filters nothing: it picks the offers shown.
    """

    platforms: list[PlatformName] = Field(
        default_factory=list, max_length=len(PLATFORMS), description="any of these platforms")
    region: Region | None = Field(None, description="where to watch; default US")
    available_now: Bool = Field(False, description="only items watchable now in region")


class RecommendationRequest(WatchFilters):
    """``POST /api/v1/recommendations``."""

    user_id: UserId
    context: RecommendationContext | None = None
    limit: Int = Field(20, ge=1, le=100)
    exclude_watched: Bool = True
    # weight of diversity in MMR re-ranking: λ = 1 - threshold, 0 = pure relevance;
    # None: the served pipeline's fitted λ
    diversity_threshold: Number | None = Field(
        None, ge=0.0, le=1.0, validation_alias=AliasChoices("diversity_threshold", "diversity"))


class BatchRecommendationRequest(WatchFilters):
    """``POST /api/v1/recommendations/batch`` (offline evaluation, one batched pass)."""

    user_ids: list[UserId] = Field(min_length=1, max_length=1000)
    limit: Int = Field(20, ge=1, le=100)
    exclude_watched: Bool = True


class Recommendation(BaseModel):
    """One recommended item (SPEC §1 Recommendation)."""

    content_id: int | str
    confidence_score: float
    recommendation_type: RecommendationType
    based_on: list[str]
    explanation: str
    experiment_variant: str | None = None
    # live offers in the request's region; None when the catalog does not hold the item
    where_to_watch: WhereToWatch | None = None


class RecommendationResponse(BaseModel):
    """Recommendations for one user."""

    user_id: str
    recommendations: list[Recommendation]
    generated_at: datetime
    ttl_seconds: int
    # "fallback": the model's ranking failed or timed out; the list is the most popular items
    strategy: Literal["personalized", "cold_start_genres", "cold_start_trending", "fallback"]
    model_version: str


class BatchRecommendationResponse(BaseModel):
    """Recommendations for many users (same order as the request)."""

    results: list[RecommendationResponse]


class SimilarRequest(_Request):
    """``POST /api/v1/recommendations/similar``."""

    content_id: ContentId
    limit: Int = Field(10, ge=1, le=100)
    region: Region | None = Field(None, description="where to watch; default US")


class SimilarItem(BaseModel):
    """A similar item and its cosine similarity."""

    content_id: int | str
    score: float
    # live offers in the request's region; None when the catalog does not hold the item
    where_to_watch: WhereToWatch | None = None


class SimilarResponse(BaseModel):
    """Items similar to ``content_id``."""

    content_id: int | str
    similar_content: list[SimilarItem]
    model_version: str


class ScoreRequest(_Request):
    """``POST /api/v1/personalization/score``."""

    user_id: UserId
    content_id: ContentId
    context: RecommendationContext | None = None


class ScoreComponents(BaseModel):
    """Per-source normalised scores; None where the source does not apply."""

    collaborative: float | None
    content_based: float | None
    graph_based: float | None
    context: float | None
    lora_boost: float


class ScoreResponse(BaseModel):
    """Personalisation score of one (user, item) pair in [0, 1]."""

    user_id: str
    content_id: int | str
    score: float
    components: ScoreComponents
    model_version: str


class ViewingEventIn(_Request):
    """One viewing event (SPEC §1 ViewingEvent); ``timestamp`` ISO-8601 or Unix seconds."""

    content_id: ContentId
    timestamp: Timestamp
    completion_rate: Number = Field(ge=0.0, le=1.0)
    rating: Annotated[int, Field(ge=1, le=5), *INT] | None = None
    is_rewatch: Bool = False
    dismissed: Bool = False


#: a genre label of a sign-up: not blank (labels are stripped)
GenreLabel = Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]


class ProfileUpdateRequest(_Request):
    """``POST /api/v1/profile/update``; ``signup_genres`` seeds cold-start results."""

    # at least one event or a signup_genres list (the validator below; the OpenAPI document
    # says so: without signup_genres, or with it null, viewing_events must hold an event).
    # Only in that document (sona.serving.routing): BentoML's client read a top-level anyOf
    # branch as the input's properties, and `bentoml build` refuses "if"
    OPENAPI_EXTRA: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"signup_genres": {"type": "null"}}},
        "then": {"required": ["viewing_events"],
                 "properties": {"viewing_events": {"minItems": 1}}}}

    user_id: UserId
    viewing_events: list[ViewingEventIn] = Field(default_factory=list, max_length=1000)
    signup_genres: list[GenreLabel] | None = Field(None, max_length=24)

    @model_validator(mode="after")
    def _something_to_update(self) -> ProfileUpdateRequest:
        if not self.viewing_events and self.signup_genres is None:
            raise ValueError("viewing_events: give at least one event (or signup_genres)")
        return self


class ProfileUpdateResponse(BaseModel):
    """Result of a profile update."""

    status: Literal["updated"]
    user_id: str
    events_processed: int
    preference_vector_dim: int
    interaction_count: int
    lora_training: Literal["scheduled", "not_needed", "already_running"]


class LoraTrainRequest(_Request):
    """``POST /api/v1/lora/train``; ``force`` ignores the minimum retrain interval."""

    user_id: UserId
    force: Bool = False


class LoraTrainResponse(BaseModel):
    """A finished adapter training."""

    status: Literal["training_completed"]
    user_id: str
    duration_ms: float
    training_iterations: int
    events_used: int
    adapter_version: int
    loss: float


class ReloadRequest(_Request):
    """``POST /admin/reload``: a version to load (default: the registry's champion)."""

    version: str | None = Field(None, max_length=32)
    wait: Bool = False


__all__ = [
    "BatchRecommendationRequest", "BatchRecommendationResponse", "DeviceType", "LoraTrainRequest",
    "LoraTrainResponse", "ProfileUpdateRequest", "ProfileUpdateResponse", "Recommendation",
    "RecommendationContext", "RecommendationRequest", "RecommendationResponse",
    "RecommendationType", "ReloadRequest", "ScoreComponents", "ScoreRequest", "ScoreResponse",
    "SimilarItem", "SimilarRequest", "SimilarResponse", "TimeOfDay", "ViewingEventIn",
    "WatchFilters",
]
