"""Tests of the Textual app: snapshots and behaviour over an in-memory service, Pilot-driven
integration against the real engine and Redis, and a real terminal (tmux)."""
