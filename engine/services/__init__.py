"""Application operations without a Request."""
