"""What the MCP tools do: thin calls into the serving handlers of a :class:`SonaApp`.

Every tool runs the same handler method as the matching HTTP endpoint inside
``SonaApp.dispatch`` (so errors, statuses and request metrics are shared), then reshapes
the answer for an assistant: titles next to ids, one flat record per item. Nothing here
ranks, searches or stores on its own. A handler error becomes :class:`ToolFailure` with the
HTTP status and message, which the MCP server reports as a tool error.

The MCP process is trusted like the CLI (it runs on the operator's machine with the serving
config), so the API-key scopes of the HTTP routes are not asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sona.errors import SonaError, UnknownIdError
from sona.serving.errors import ApiError
from sona.serving.schemas import (
    RecommendationContext,
    RecommendationRequest,
    ScoreRequest,
    SimilarRequest,
)
from sona.serving.search_api import FiltersModel, Range, SearchRequest
from sona.serving.sync_http import sync_call
from sona.sync.document import completion

if TYPE_CHECKING:
    from sona.serving.app import SonaApp
    from sona.serving.recs_api import RecsHandler

#: the device the assistant's watchlist edits are made on (registered on first use)
ASSISTANT_DEVICE = "mcp-assistant"


class ToolFailure(SonaError):
    """A tool call the service refused: HTTP-like ``status`` and the handler's message."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.body = dict(body)
        fields = body.get("fields")
        where = f" (fields: {', '.join(map(str, fields))})" if fields else ""
        super().__init__(f"{body.get('error', 'error')}: {body.get('message', '')}{where}")


class SonaTools:
    """The tool implementations over one running :class:`SonaApp`."""

    def __init__(self, app: SonaApp) -> None:
        self.app = app

    # --- plumbing ------------------------------------------------------------------------

    def _call(self, endpoint: str, handler: Callable[[], Any]) -> dict[str, Any]:
        status, body = self.app.dispatch(f"mcp_{endpoint}", handler)
        if status >= 400:
            raise ToolFailure(status, body)
        return body

    def _document(self, content_id: str) -> dict[str, Any] | None:
        """The search document of a catalog title (ML-100K ids), or None."""
        try:
            engine = self.app.search.handler.engine
            docs = engine.documents_
        except (ApiError, AttributeError):
            return None
        for key in (content_id, int(content_id) if content_id.isdigit() else None):
            if key is None:
                continue
            try:
                row = docs.iloc[engine.item_position(key)]
            except (UnknownIdError, KeyError, TypeError):
                continue
            year = row["year"]
            return {"content_id": str(row["item_id"]), "title": row["title"],
                    "release_year": None if np.isnan(year) else int(year),
                    "genres": list(row["genres"]), "overview": row["overview"] or None,
                    "people": list(row["people"])[:10], "platforms": list(row["platforms"]),
                    "rating": None if np.isnan(row["rating"]) else float(row["rating"]),
                    "popularity": float(row["popularity"])}
        return None

    def _catalog_item(self, content_id: str) -> dict[str, Any] | None:
        if self.app.catalog.store.find(content_id) is None:
            return None
        return self._call("get_content", lambda: self.app.catalog.get_content(content_id))

    def title(self, content_id: str) -> str | None:
        """A title for ``content_id`` (search documents, then the catalog store)."""
        doc = self._document(str(content_id))
        if doc is not None:
            return str(doc["title"])
        item = self.app.catalog.store.find(str(content_id))
        return None if item is None else item.title

    # --- search and recommendations -------------------------------------------------------

    def semantic_search(self, query: str, limit: int = 10, genres: list[str] | None = None,
                        year_min: int | None = None, year_max: int | None = None,
                        user_id: str | None = None) -> dict[str, Any]:
        """``POST /api/v1/search`` (hybrid keyword + vector)."""
        filters = None
        if genres or year_min is not None or year_max is not None:
            filters = FiltersModel.model_validate({
                "genres": genres or [],
                "year_range": Range(min=year_min, max=year_max)
                if year_min is not None or year_max is not None else None})
        req = SearchRequest(query=query, filters=filters, page_size=limit, user_id=user_id)
        body = self._call("search", lambda: self.app.search.handler.search(req))
        return {"query": query, "total_count": body["total_count"], "results": [
            {"content_id": r["content"]["id"], "title": r["content"]["title"],
             "release_year": r["content"]["release_year"], "genres": r["content"]["genres"],
             "platforms": r["content"]["platforms"],
             "relevance_score": round(r["relevance_score"], 4),
             "match_reasons": r["match_reasons"]} for r in body["results"]],
            "query_parsed": body["query_parsed"]}

    def get_recommendations(self, user_id: str, limit: int = 10,
                            context: RecommendationContext | None = None) -> dict[str, Any]:
        """``POST /api/v1/recommendations`` (A/B arm included), with titles."""
        req = RecommendationRequest.model_validate(
            {"user_id": user_id, "limit": limit, "context": context})
        body = self._call("recommendations", lambda: self.app.experiments.recommendations(req))
        for rec in body["recommendations"]:
            rec["title"] = self.title(str(rec["content_id"]))
        return body

    def similar_content(self, content_id: str, limit: int = 10) -> dict[str, Any]:
        """``POST /api/v1/recommendations/similar``, with titles."""
        req = SimilarRequest.model_validate({"content_id": content_id, "limit": limit})
        body = self._call("similar", lambda: self.app.recs.similar(req))
        body["title"] = self.title(str(body["content_id"]))
        for item in body["similar_content"]:
            item["title"] = self.title(str(item["content_id"]))
        return body

    def _ranker(self, user_id: str) -> tuple[RecsHandler, str | None]:
        """The handler that ranks for ``user_id`` (their A/B arm's) and the arm's tag."""
        exps = self.app.experiments
        for exp in exps.running():
            variant = exps.repo.assign(exp, user_id)
            if variant is not None:
                return exps.handler_for(variant), f"{exp.name}:{variant.name}"
        return self.app.recs, None

    def explain_recommendation(self, user_id: str, content_id: str,
                               context: RecommendationContext | None = None,
                               list_length: int = 100) -> dict[str, Any]:
        """Sources, weights and context behind ``content_id`` for ``user_id``.

        Runs the user's ranker (their A/B arm, without logging an exposure) twice through
        the handlers of ``/api/v1/recommendations`` and ``/api/v1/personalization/score``:
        the list says where the item ranks and which sources it came from; the score gives
        each source's normalised score at the item. The weights are the served pipeline's
        (or the arm's), renormalised over the sources that apply to this user, as the blend
        does, so ``contribution = weight x normalised score`` and the contributions sum to
        the score before the LoRA boost.
        """
        ranker, arm = self._ranker(user_id)
        listing = self._call("explain_list", lambda: ranker.recommendations(
            RecommendationRequest.model_validate(
                {"user_id": user_id, "limit": list_length, "context": context})))
        score = self._call("explain_score", lambda: ranker.score(
            ScoreRequest(user_id=user_id, content_id=content_id, context=context)))
        model = ranker.store.current
        configured = ranker.overrides.weight_array()
        names = list(model.pipeline.weights)
        weights = dict(zip(names, configured, strict=True)) if configured is not None \
            else model.pipeline.weights
        comps = score["components"]
        applies = {s: comps.get(s) is not None for s in names}
        total = sum(float(weights[s]) for s in names if applies[s])
        sources = []
        for s in names:
            w = float(weights[s]) / total if applies[s] and total > 0 else 0.0
            norm = comps.get(s)
            sources.append({"source": s, "configured_weight": round(float(weights[s]), 6),
                            "weight": round(w, 6), "applies": applies[s],
                            "normalized_score": None if norm is None else round(norm, 6),
                            "contribution": round(w * (norm or 0.0), 6)})
        rank = next((i + 1 for i, r in enumerate(listing["recommendations"])
                     if str(r["content_id"]) == str(score["content_id"])), None)
        entry = listing["recommendations"][rank - 1] if rank else None
        return {
            "user_id": user_id, "content_id": score["content_id"],
            "title": self.title(str(score["content_id"])), "model_version": score["model_version"],
            "experiment_variant": arm, "strategy": listing["strategy"],
            "rank": rank, "in_top": list_length,
            "recommendation_type": entry["recommendation_type"] if entry else None,
            "based_on": entry["based_on"] if entry else [],
            "explanation": entry["explanation"] if entry else
            f"not in this user's top {list_length}",
            "score": score["score"], "lora_term": comps["lora_boost"],
            "lora_boost": model.pipeline.config.lora_boost
            if ranker.overrides.lora_boost is None else ranker.overrides.lora_boost,
            "mmr_lambda": model.pipeline.mmr_lambda if ranker.overrides.mmr_lambda is None
            else ranker.overrides.mmr_lambda,
            "sources": sources,
            "context": {k: v for k, v in context.model_dump(exclude_none=True).items() if v != []}
            if context else {},
        }

    # --- catalog ---------------------------------------------------------------------------

    def get_content_details(self, content_id: str) -> dict[str, Any]:
        """A title's metadata: the catalog store's record, else the search catalog's."""
        # whether the served model can recommend it (catalog items it was not trained on
        # and cannot embed are searchable only)
        in_model = self.app.store.ready and int(self.app.store.current.items.numbers(
            [content_id], missing="negative")[0]) >= 0
        item = self._catalog_item(content_id)
        if item is not None:
            return {"source": "catalog", **item, "recommendable": bool(in_model)}
        doc = self._document(content_id)
        if doc is None:
            raise ToolFailure(404, {"error": "not_found",
                                    "message": f"unknown content id {content_id!r}"})
        return {"source": "search_catalog", **doc, "recommendable": bool(in_model)}

    def check_availability(self, content_id: str, region: str | None = None) -> dict[str, Any]:
        """Platforms, prices and deep links from the catalog store's availability offers."""
        item = self._catalog_item(content_id)
        if item is None:
            doc = self._document(content_id)
            if doc is None:
                raise ToolFailure(404, {"error": "not_found",
                                        "message": f"unknown content id {content_id!r}"})
            return {"content_id": content_id, "title": doc["title"], "available": None,
                    "has_platform_data": False, "offers": [],
                    "message": f"No platform data: {doc['title']!r} is not in the catalog "
                               "store, so SONA knows no platforms, prices or deep links "
                               "for it."}
        offers = [o for o in item["availability"]
                  if region is None or not o.get("regions") or region.upper() in o["regions"]]
        shown = [{k: o.get(k) for k in ("platform", "availability_type", "regions",
                                          "price_cents", "currency", "deep_link_url",
                                          "web_url", "available_from", "available_until")}
                 for o in offers]
        if not item["availability"]:
            message = f"No platform data: {item['title']!r} has no availability offers."
        elif not shown:
            message = f"{item['title']!r} is not offered in region {region!r}."
        else:
            message = (f"{item['title']!r} is on "
                       f"{', '.join(sorted({o['platform'] for o in shown}))}.")
        return {"content_id": item["id"], "title": item["title"], "available": bool(shown),
                "has_platform_data": bool(item["availability"]), "offers": shown,
                "message": message}

    def catalog_listing(self, limit: int = 100) -> dict[str, Any]:
        """The most popular titles of the search catalog, plus the catalog store's size."""
        try:
            docs = self.app.search.handler.engine.documents_
        except (ApiError, AttributeError):
            docs = None
        top = [] if docs is None else [
            {"content_id": str(r.item_id), "title": r.title,
             "uri": f"content://item/{r.item_id}"}
            for r in docs.sort_values("popularity", ascending=False).head(limit)
            .itertuples(index=False)]
        return {"titles": top, "search_catalog_size": 0 if docs is None else len(docs),
                "catalog_store_size": self.app.catalog.store.count()}

    # --- sync ------------------------------------------------------------------------------

    def _known(self, content_id: str) -> None:
        if self._document(content_id) is None and self.app.catalog.store.find(content_id) is None:
            raise ToolFailure(404, {"error": "not_found", "fields": ["content_id"],
                                    "message": f"unknown content id {content_id!r}"})

    def watchlist_add(self, user_id: str, content_id: str) -> dict[str, Any]:
        """Add a title through the sync service (as the assistant device)."""
        self._known(content_id)
        pushed = self._call("watchlist_add", lambda: sync_call(lambda: self.app.sync.edit(
            user_id, ASSISTANT_DEVICE, "watchlist_add", content_id,
            device_name="MCP assistant").to_dict()))
        return {**self.watchlist_list(user_id), "operation": pushed}

    def watchlist_remove(self, user_id: str, content_id: str) -> dict[str, Any]:
        """Remove a title (every add of it the service has seen)."""
        pushed = self._call("watchlist_remove", lambda: sync_call(lambda: self.app.sync.edit(
            user_id, ASSISTANT_DEVICE, "watchlist_remove", content_id,
            device_name="MCP assistant").to_dict()))
        return {**self.watchlist_list(user_id), "operation": pushed}

    def watchlist_list(self, user_id: str) -> dict[str, Any]:
        """The merged watchlist and progress of the user."""
        doc = self._call("watchlist", lambda: self.app.sync.document(user_id).to_dict())
        return {"user_id": user_id,
                "watchlist": [{"content_id": c, "title": self.title(c)}
                              for c in doc["watchlist"]],
                "in_progress": [{"content_id": c, "title": self.title(c),
                                 "completion": round(completion(v), 4)}
                                for c, v in doc["progress"].items()]}

    def list_devices(self, user_id: str) -> dict[str, Any]:
        """The user's registered devices."""
        return self._call("devices", lambda: {"user_id": user_id, "devices": [
            d.to_dict() for d in self.app.sync.devices(user_id)]})

    # --- experiments -----------------------------------------------------------------------

    def list_experiments(self, status: str | None = None) -> dict[str, Any]:
        """``GET /api/v1/experiments``."""
        return self._call("experiments", lambda: self.app.experiments.list_experiments(status))

    def experiment_report(self, experiment_id: str, metric: str | None = None
                          ) -> dict[str, Any]:
        """``GET /api/v1/experiments/{id}/report``."""
        return self._call("experiment_report",
                          lambda: self.app.experiments.report(experiment_id, metric))


__all__ = ["ASSISTANT_DEVICE", "SonaTools", "ToolFailure"]
