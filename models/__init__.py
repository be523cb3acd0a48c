"""DeepCanvas machine learning: one sub-package per method, plus artifact packing."""
