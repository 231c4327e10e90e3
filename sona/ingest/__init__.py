"""Ingestion: raw platform feeds -> normalised records -> resolved, scored catalog items."""
