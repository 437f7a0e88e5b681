"""Training and published datasets from run folders: export formats, splits, near-duplicate removal,
decontamination. Imports runs/, method/ and search/; never cli/.
"""
