"""DeepCanvas HTTP service."""
