"""Jobs, the worker thread, devices, weights and plugin discovery (no widgets)."""
