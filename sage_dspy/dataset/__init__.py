"""Training and published datasets from run folders: the kept pairs, leak-free splits, near-duplicate removal,
decontamination, one writer per consumer's format (Search-R1, verl, OpenAI/TRL SFT, SFT in each RL recipe's
own format, a HF folder) and its card, and the trainer settings the pairs need.
Imports runs/ (folder and record readers), method/ constants and search/; never cli/ or tracking/.
"""
