"""The logit lens: after the last block it is the model's own logits; earlier layers read each block's
residual stream through the final norm and lm_head."""

import torch

from engine.inspection.lens import block_outputs, lens_logits, logit_lens
from engine.tokenizer import byte_tokenizer
from tests.engine.inspection.models import random_ids


@torch.no_grad()
def test_last_layer_is_the_model_and_earlier_layers_differ(model):
    ids = random_ids()
    lens = lens_logits(model, ids)
    assert lens.shape == (2, 2, 12, model.config.vocab_size)
    torch.testing.assert_close(lens[-1], model(ids, use_cache=False).logits, atol=1e-5, rtol=0)
    with block_outputs(model) as residuals:
        model(ids, use_cache=False)
    torch.testing.assert_close(lens[0], model.lm_head(model.model.norm(residuals[0])))
    assert not torch.allclose(lens[0], lens[1])


def test_lens_report(model):
    tokenizer = byte_tokenizer()
    model.resize_token_embeddings(len(tokenizer))
    report = logit_lens(model, tokenizer, "abc")
    assert report["tokens"][1:] == ["a", "b", "c"]
    assert len(report["layers"]) == 2
    last = report["layers"][-1]
    with torch.no_grad():
        probs = model(torch.tensor([[tokenizer.eos_token_id, *b"abc"]]), use_cache=False).logits[0].softmax(-1)
    assert last["top"] == [tokenizer.decode([i]) for i in probs.argmax(-1).tolist()]
    torch.testing.assert_close(torch.tensor(last["prob"]), probs.max(-1).values)
    torch.testing.assert_close(torch.tensor(last["target_prob"]), probs[torch.arange(3), list(b"abc")])
