"""Family analyses written after training (placeholder registry, filled below)."""
