"""The document model: images, selections, history, settings. No Qt widgets, no torch."""
