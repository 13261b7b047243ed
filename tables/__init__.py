"""Changelog-backed tables (mailboxes, archive) and readers that turn them into DataFrames."""
