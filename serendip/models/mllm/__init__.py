"""The planner MLLM: tiny Qwen2-VL, tokenizer, prompt variants, grammar-constrained decoding, SFT, evaluation."""
