"""The deterministic offline LM: an engine answering each role's prompt from the passages in it, and
its loopback HTTP server. Imports only the root's answers and the search tool's passage format; nothing imports it but
lm/ (the default LM), runs/ (its model name) and tests.
"""
