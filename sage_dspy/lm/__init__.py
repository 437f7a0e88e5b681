"""Language models and their plumbing: LMs per role (roles.py), their settings, prices, usage counting,
in-flight call slots, the adapters (chat, JSON, JSON schema; choice.py picks one per role), ReAct and bounded
contexts. Imports offline/ (the default LM) and the root's answers/errors/redact/breaker only.
"""
