"""The deterministic offline LM (see engine.py)."""
