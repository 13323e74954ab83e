"""The two models, each with its training code: SASRec (retrieval) and the planner MLLM."""
