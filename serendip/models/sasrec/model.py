"""SASRec: a causal transformer over item-id sequences (Kang & McAuley 2018), TorchScript-friendly.

Histories are left-padded with item index 0 to ``max_len`` (or to their batch's longest history: positions
count back from the most recent item); the user embedding is the output at the last position (the most recent
item). Scores are dot products with the item embedding table, which is shared between input and output (row 0
is padding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from serendip.artifacts.sasrec import SASRecConfig


class CausalBlock(nn.Module):
    """Pre-norm self-attention block with a per-sequence boolean attention mask."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.attention_norm = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.feed_forward_norm = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden, inner), nn.GELU(), nn.Dropout(dropout), nn.Linear(inner, hidden)
        )
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, states: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``states`` [B, L, D]; ``allowed`` [B, 1, L, L], True where a query may attend to a key."""
        batch, length, hidden = states.shape
        qkv = self.qkv(self.attention_norm(states)).view(batch, length, 3, self.heads, hidden // self.heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        states = states + self.residual_dropout(self.out(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return states + self.residual_dropout(self.feed_forward(self.feed_forward_norm(states)))

    def last_position(self, states: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``forward(states, allowed)[:, -1]`` [B, D] in eval mode, computing the query, attention output and
        feed-forward of the last position only (keys and values still cover every position)."""
        batch, length, hidden = states.shape
        head_size = hidden // self.heads
        normed = self.attention_norm(states)
        query = F.linear(normed[:, -1:], self.qkv.weight[:hidden], self.qkv.bias[:hidden])
        key_value = F.linear(normed, self.qkv.weight[hidden:], self.qkv.bias[hidden:])
        query = query.view(batch, 1, self.heads, head_size).transpose(1, 2)
        key, value = key_value.view(batch, length, 2, self.heads, head_size).permute(2, 0, 3, 1, 4).unbind(0)
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed[:, :, -1:])
        last = states[:, -1] + self.out(attended.reshape(batch, hidden))
        return last + self.feed_forward(self.feed_forward_norm(last))


class SASRec(nn.Module):
    """Sequence encoder: ``forward(history [B, L]) -> user embedding [B, D]``."""

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.max_len = config.max_len
        self.embedding_scale = math.sqrt(config.hidden)
        self.item_embedding = nn.Embedding(config.num_items + 1, config.hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, config.hidden)
        self.input_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            [CausalBlock(config.hidden, config.heads, config.inner, config.dropout) for _ in range(config.layers)]
        )
        self.final_norm = nn.LayerNorm(config.hidden)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position, [B, L, D], for left-padded ``history`` [B, L] (L <= max_len)."""
        states, allowed = self._embedded(history)
        for block in self.blocks:
            states = block(states, allowed)
        return self.final_norm(states)

    def _embedded(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input states [B, L, D] and the attention mask [B, 1, L, L] (True: the query may see the key)."""
        length = history.shape[1]
        # Positions count back from the most recent item, so a batch cut to its longest history (leading
        # all-padding columns dropped) encodes exactly as at full length.
        positions = torch.arange(self.max_len - length, self.max_len, device=history.device).unsqueeze(0)
        states = self.item_embedding(history) * self.embedding_scale + self.position_embedding(positions)
        states = self.input_dropout(states * (history != 0).unsqueeze(-1).to(states.dtype))
        causal = torch.ones(length, length, dtype=torch.bool, device=history.device).tril()
        key_is_item = (history != 0).unsqueeze(1)  # [B, 1, L]
        diagonal = torch.eye(length, dtype=torch.bool, device=history.device)
        # Padding keys are hidden, but every position keeps itself so no row is fully masked (no NaN).
        allowed = (causal & key_is_item) | diagonal
        return states, allowed.unsqueeze(1)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """User embedding: the hidden state at the last (most recent) position.

        In training mode ``encode(history)[:, -1]``; in eval mode (serving) the last block computes the last
        position only: the user embedding depends on nothing else.
        """
        if self.training:
            return self.encode(history)[:, -1, :]
        states, allowed = self._embedded(history)
        last_block = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            if index < last_block:
                states = block(states, allowed)
            else:
                states = block.last_position(states, allowed)
        return self.final_norm(states)

    def item_table(self) -> torch.Tensor:
        """Item embeddings [num_items + 1, D]; row 0 is padding."""
        return self.item_embedding.weight
