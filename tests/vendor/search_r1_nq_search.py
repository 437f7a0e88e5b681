# Vendored verbatim from PeterGriffinJin/Search-R1, scripts/data_process/nq_search.py at commit
# a14dc3a4ffc6fe88c1e95038d9738e21ba3f7a06, Apache-2.0: make_prefix alone (the script's main needs the network).
# Do not edit: re-copy it from upstream instead.


def make_prefix(dp, template_type):
    question = dp['question']

    # NOTE: also need to change reward_score/countdown.py
    if template_type == 'base':
        """This works for any base model"""
        prefix = f"""Answer the given question. \
You must conduct reasoning inside <think> and </think> first every time you get new information. \
After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query </search> and it will return the top searched results between <information> and </information>. \
You can search as many times as your want. \
If you find no further external knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Question: {question}\n"""
    else:
        raise NotImplementedError
    return prefix

