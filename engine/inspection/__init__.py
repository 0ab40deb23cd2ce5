"""Looking inside a model: what `llmlab inspect` shows, as plain data a worker can send.

loading.py    a model folder → an LLM-Lab model and its tokenizer, ready to inspect
attention.py  attention weights computed explicitly (SDPA returns none), per-head summaries
tokens.py     per-token surprise (loss, bits, bits per byte) and top-k alternatives
lens.py       the logit lens: what each block's residual stream already predicts
ablation.py   zero or mean ablation of heads, MLPs and blocks; the damage table; saving
heldout.py    held-out batches for ablation: a text file or the project's eval split
render.py     the terminal text of each view (heatmaps, tables) and the ablation modes; torch-free, the app reads it
"""
