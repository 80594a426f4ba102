"""Tests of the routing evaluation (sona_web.eval)."""
