"""Baselines for ``deepcanvas bench``: what a user would deploy instead of DeepCanvas."""
