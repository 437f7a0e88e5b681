"""The remembered model-metadata lookup answers exactly as DSPy's own, once per model, with a fresh copy each time."""

from dspy.clients import capabilities, costs, model_metadata

from sage_dspy.lm.metadata_lookup import remember_model_metadata, remembered_model_info

CASES = [("openai", "gpt-4o-mini", None), ("openai", "sage-offline", None), ("vllm", "my-model", None),
         ("openai", "gpt-4o-mini", ["openai"]), ("anthropic", "claude-3-5-haiku-20241022", None)]


def test_same_answers_as_dspy():
    remembered = remembered_model_info(model_metadata.model_info)
    for provider, model, namespaces in CASES:
        expected = model_metadata.model_info(provider, model, namespaces=namespaces)
        assert remembered(provider, model, namespaces=namespaces) == expected
        assert remembered(provider, model, namespaces=namespaces) == expected  # and again, from memory
    assert remembered("openai", "gpt-4o-mini")  # a model the map knows is found, not an empty answer


def test_looks_up_once_per_model_and_hands_out_copies():
    calls = []

    def counting(provider, model, *, namespaces=None):
        calls.append((provider, model, namespaces))
        return {"input_cost_per_token": 1e-6, "nested": {"a": 1}}

    remembered = remembered_model_info(counting)
    first = remembered("openai", "x")
    first["nested"]["a"] = 99  # a caller changing its copy
    second = remembered("openai", "x")
    remembered("openai", "x", namespaces=("openai",))
    assert calls == [("openai", "x", None), ("openai", "x", ["openai"])]
    assert second["nested"]["a"] == 1


def test_installed_where_dspy_prices_replies():
    remember_model_metadata()
    remember_model_metadata()  # idempotent: not wrapped twice
    for module in (costs, capabilities):
        assert hasattr(module.model_info, "remembered")
        assert module.model_info.__wrapped__ is model_metadata.model_info
