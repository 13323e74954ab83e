"""SASRec: the transformer sequence model the Retriever ranks with, its training and TorchScript export."""
