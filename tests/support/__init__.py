"""Helpers shared by the tests (servers, generated images)."""
