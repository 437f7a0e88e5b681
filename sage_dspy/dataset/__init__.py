"""Training sets from finished runs: the kept pairs of run folders, leak-free splits, one writer per consumer's
format (Search-R1, verl, OpenAI and TRL SFT, a Hugging Face folder) and its dataset card. Imports runs/ (folder
and record readers), method/ constants and search/; never cli/.
"""
