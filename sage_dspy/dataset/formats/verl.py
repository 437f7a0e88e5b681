"""verl's own Search-R1-like recipe: multi-turn rollouts where the model calls a `search` tool.

Matched against volcengine/verl at commit b178a3cd56f58b2d502255daba591e92833930a7:
- `examples/data_preprocess/preprocess_search_r1_dataset.py` `process_single_row`: a system message
  (DEFAULT_SYSTEM_CONTENT) and a user message (DEFAULT_USER_CONTENT_PREFIX.rstrip("\\n") + question);
  `data_source` "searchR1_" + the Search-R1 name; `ability` and `reward_model` as in Search-R1's rows;
  `extra_info` {"index", "need_tools_kwargs": True, "question", "split", "tools_kwargs": {"search":
  {"create_kwargs": {"ground_truth", "question", "data_source"}}}}; `metadata` (None there too).
- `verl/utils/reward_score/__init__.py` `default_compute_score`: "searchR1_<one of Search-R1's seven
  names>" selects `search_r1_like_qa_em.compute_score` (exact match on the last <answer>); any other name
  raises NotImplementedError.
- `verl/experimental/agent_loop/agent_loop.py` `generate_sequences`: a row's `agent_name` picks its agent loop;
  only when the batch has no such column does every row get `rollout.agent.default_agent_loop`. verl's own
  search rows (above) have no `agent_name`, so ours have none either: a column on our rows alone would give
  theirs None once the two are mixed (`datasets.concatenate_datasets` fills the missing column), and None is
  no registered loop. Set `actor_rollout_ref.rollout.agent.default_agent_loop=tool_agent` (the export prints
  it with the other trainer settings, settings.py) and both run the tool agent.
- `examples/sglang_multiturn/config/tool_config/search_tool_config.yaml`: the tool the rows are for, written
  beside the parquet as TOOL_CONFIG (point `retrieval_service_url` at a retriever serving your corpus).
"""

from pathlib import Path

from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats.files import write_parquet
from sage_dspy.dataset.formats.search_r1 import ABILITY, reward_model, search_r1_question
from sage_dspy.dataset.provenance import provenance

NAME = "verl"
AGENT_LOOP = "tool_agent"  # for rollout.agent.default_agent_loop; not a column (see above)
SYSTEM_CONTENT = "You are a helpful and harmless assistant."
USER_CONTENT_PREFIX = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> "
    "first every time you get new information. After reasoning, if you find you lack "
    "some knowledge, you can call a search engine by <tool_call> query </tool_call> "
    "and it will return the top searched results between <tool_response> and "
    "</tool_response>. You can search as many times as your want. If you find no "
    "further external knowledge needed, you can directly provide the answer inside "
    "<answer> and </answer>, without detailed illustrations. For example, "
    "<answer> Beijing </answer>. Question: "
)
TOOL_CONFIG_FILE = "search_tool_config.yaml"
TOOL_CONFIG = """\
tools:
  - class_name: verl.tools.search_tool.SearchTool
    config:
      retrieval_service_url: http://127.0.0.1:8000/retrieve
      num_workers: 120
      rate_limit: 120
      timeout: 30
      type: native
    tool_schema:
      type: function
      function:
        name: search
        description: Searches the web for relevant information based on the given query.
        parameters:
          type: object
          properties:
            query_list:
              type: array
              item:
                type: string
              description: A list of fully-formed semantic queries. The tool will return search results for each query.
          required:
            - query_list
"""


def data_source(search_r1_name: str) -> str:
    return "searchR1_" + search_r1_name


def row(pair: dict, split: str, index: int, context: ExportContext) -> dict:
    question = search_r1_question(pair["question"])  # verl reads the question column of Search-R1's rows
    reward = reward_model(pair)
    source = data_source(context.data_source)
    return {
        "data_source": source,
        "prompt": [{"role": "system", "content": SYSTEM_CONTENT},
                   {"role": "user", "content": USER_CONTENT_PREFIX.rstrip("\n") + question}],
        "ability": ABILITY,
        "reward_model": reward,
        "extra_info": {
            "index": index,
            "need_tools_kwargs": True,
            "question": question,
            "split": split,
            "tools_kwargs": {"search": {"create_kwargs": {"ground_truth": reward["ground_truth"],
                                                          "question": question, "data_source": source}}},
            **provenance(pair, context.run_of(pair)),
        },
        "metadata": None,
    }


def write(splits: dict[str, list[dict]], folder: Path, context: ExportContext) -> dict[str, int]:
    rows = {split: [row(pair, split, index, context) for index, pair in enumerate(pairs)]
            for split, pairs in splits.items()}
    counts = write_parquet(rows, folder)
    (folder / TOOL_CONFIG_FILE).write_text(TOOL_CONFIG, encoding="utf-8")
    return counts
