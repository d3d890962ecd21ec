"""Readers for the upload layouts the portal recognises; each yields samples in one shape."""
