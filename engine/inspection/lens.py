"""The logit lens (nostalgebraist 2020): the final norm and lm_head applied to the residual stream
after each block, so each layer's best guess for the next token can be read. After the last block
it is the model's own prediction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from engine.inspection.hooks import hooked
from engine.inspection.loading import encode, token_texts


@contextlib.contextmanager
def block_outputs(model) -> Iterator[list[torch.Tensor]]:
    """Inside: the list fills with each block's output, the residual stream (B, T, C), in layer order."""
    outputs: list[torch.Tensor] = []
    handles = [
        layer.register_forward_hook(lambda module, args, output: outputs.append(output)) for layer in model.model.layers
    ]
    with hooked(handles):
        yield outputs


@torch.no_grad()
def lens_logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    """(L, B, T, V): lm_head(norm(residual after block l)) for every block l."""
    with block_outputs(model) as residuals:
        model(input_ids=input_ids, use_cache=False)
    return torch.stack([model.lm_head(model.model.norm(h)) for h in residuals]).float()


def logit_lens(model, tokenizer, text: str) -> dict:
    """Per layer × position: the top token and its probability, and the probability of the true next token."""
    ids = encode(tokenizer, text, context=model.config.max_position_embeddings)
    probs = lens_logits(model, torch.tensor([ids], device=model.device))[:, 0].softmax(dim=-1)  # (L, T, V)
    top_prob, top_id = probs.max(dim=-1)  # (L, T)
    targets = torch.tensor(ids[1:], device=probs.device)
    target_prob = probs[:, :-1].gather(-1, targets[None, :, None].expand(probs.shape[0], -1, 1))[..., 0]
    return {
        "tokens": token_texts(tokenizer, ids),
        "layers": [
            {
                "top": token_texts(tokenizer, top_id[layer].tolist()),
                "prob": top_prob[layer].tolist(),
                "target_prob": target_prob[layer].tolist(),  # one fewer: the last token has no next
            }
            for layer in range(probs.shape[0])
        ],
    }
