"""The paper's Adam without its redundant first moment: same updates as torch's Adam."""

from __future__ import annotations

import torch

from runtime.optimizer import AdamWithoutMomentum, make_adam


def test_adam_without_momentum_matches_torch_adam_with_beta1_zero():
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(7)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    mine, reference = (
        make_adam(ours, 1e-2, (0.0, 0.999)),
        torch.optim.Adam(theirs, 1e-2, (0.0, 0.999)),
    )
    assert isinstance(mine, AdamWithoutMomentum)
    for step in range(20):
        for params, optimizer in ((ours, mine), (theirs, reference)):
            optimizer.zero_grad()
            sum(((p - step) ** 2).sum() for p in params).backward()
            optimizer.step()
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6)
    assert "exp_avg" not in mine.state[ours[0]]  # the memory it saves
    restored = make_adam([torch.nn.Parameter(t.clone()) for t in start], 1e-2, (0.0, 0.999))
    restored.load_state_dict(mine.state_dict())
    assert torch.equal(
        restored.state_dict()["state"][0]["exp_avg_sq"], mine.state[ours[0]]["exp_avg_sq"]
    )


def test_a_nonzero_beta1_gets_torch_adam():
    assert isinstance(
        make_adam([torch.nn.Parameter(torch.zeros(2))], 1e-3, (0.5, 0.999)), torch.optim.Adam
    )
