# Vendored verbatim from PeterGriffinJin/Search-R1, search_r1/llm_agent/generation.py at commit
# a14dc3a4ffc6fe88c1e95038d9738e21ba3f7a06, Apache-2.0: the three methods of LLMGenerationManager that build a
# search request and parse the retrieval server's reply (lines 438-469), in a shell class holding the
# GenerationConfig fields they read (search_url, topk); the rest of the module needs torch and verl.
# Tests send requests to our retrieval server with them. Do not edit the methods: re-copy them from upstream.

from dataclasses import dataclass
from typing import List

import requests


@dataclass
class GenerationConfig:
    search_url: str = None
    topk: int = 3


class LLMGenerationManager:
    def __init__(self, config: GenerationConfig):
        self.config = config

    def batch_search(self, queries: List[str] = None) -> str:
        """
        Batchified search for queries.
        Args:
            queries: queries to call the search engine
        Returns:
            search results which is concatenated into a string
        """
        results = self._batch_search(queries)['result']
        
        return [self._passages2string(result) for result in results]

    def _batch_search(self, queries):
        
        payload = {
            "queries": queries,
            "topk": self.config.topk,
            "return_scores": True
        }
        
        return requests.post(self.config.search_url, json=payload).json()

    def _passages2string(self, retrieval_result):
        format_reference = ''
        for idx, doc_item in enumerate(retrieval_result):
            
            content = doc_item['document']['contents']
            title = content.split("\n")[0]
            text = "\n".join(content.split("\n")[1:])
            format_reference += f"Doc {idx+1}(Title: {title}) {text}\n"

        return format_reference
