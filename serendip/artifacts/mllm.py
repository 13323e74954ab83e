"""The ``mllm`` artifact: a fine-tuned planner MLLM, self-describing for every engine.

Written by ``serendip.jobs.train_mllm``; a version directory holds::

    planner.json          prompt variant, frame setting, planning level l and δ, model subdirectory
    grammar.ebnf          the answer grammar
    descriptions.json     cluster id <-> description, in grammar order
    model/                Hugging Face checkpoint (merged weights), tokenizer, vision.json, preprocessor_config.json
    metrics.json          held-out metrics and baselines
    related_keywords.parquet   video_cot_rag planners only: item id -> the keywords of its co-engaged items

Its manifest's ``inputs.curation`` names the curation (and so the tree) it was trained on. Parsing
``planner.json`` into prompt objects is ``serendip.models.mllm.planner_spec``'s job.
"""

from __future__ import annotations

MLLM_KIND = "mllm"
SCHEMA_VERSION = 1
PLANNER_FILE = "planner.json"
GRAMMAR_FILE = "grammar.ebnf"
DESCRIPTIONS_FILE = "descriptions.json"
MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
RELATED_KEYWORDS_FILE = "related_keywords.parquet"
VISION_FILE = "vision.json"
"""Inside ``model/``: the frame geometry (size, patches) the model was trained with."""
