"""serendip: serendipitous video recommendation with a multimodal LLM planner."""
