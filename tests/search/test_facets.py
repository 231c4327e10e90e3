from __future__ import annotations

import numpy as np

from sona.search.facets import facet_counts
from sona.search.filters import DocumentArrays


def test_facet_counts(small_docs):
    arrays = DocumentArrays.from_documents(small_docs)
    facets = facet_counts(arrays, np.arange(len(small_docs)))
    genres = {f["value"]: f["count"] for f in facets["genres"]}
    assert genres["sci_fi"] == 6 and genres["comedy"] == 5 and "news" not in genres
    assert facets["genres"][0] == {"value": "sci_fi", "count": 6}
    assert {f["value"]: f["count"] for f in facets["platforms"]}["netflix"] == 4
    assert facets["years"] == [{"value": "1990s", "count": 6}, {"value": "1980s", "count": 3},
                               {"value": "Classic (pre-1980)", "count": 3}]
    assert facets["ratings"] == [{"value": "Excellent", "count": 8},
                                 {"value": "Good", "count": 3},
                                 {"value": "Average", "count": 1}]
    sub = facet_counts(arrays, np.array([2]))
    assert sub["genres"] == [{"value": "animation", "count": 1}, {"value": "comedy", "count": 1},
                             {"value": "family", "count": 1}]
