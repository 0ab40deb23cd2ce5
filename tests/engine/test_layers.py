"""The swappable parts' own maths (the whole model's parity lives in test_model.py)."""

import torch
import torch.nn.functional as F

from engine.layers import SiLUGate


def test_silu_gate_matches_autograd_and_saves_only_its_inputs():
    gate, up = torch.randn(2, 3, 8, requires_grad=True), torch.randn(2, 3, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = SiLUGate.apply(gate, up)
    assert len(saved) == 2  # autograd's silu(gate) * up would also keep silu(gate)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (gate, up), grad)
    expected = torch.autograd.grad(F.silu(gate) * up, (gate, up), grad)
    assert torch.allclose(out, F.silu(gate) * up)
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, atol=1e-6)
