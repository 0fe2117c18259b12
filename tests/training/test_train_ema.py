"""EMA of the trained weights: warm-up, and its state round trip (offline_training/training/ema.py)."""

import pytest
import torch

from offline_training.training.ema import EMA, UPDATES_KEY


def test_warm_up_forgets_the_initial_weights():
    p = torch.nn.Parameter(torch.zeros(3))
    ema = EMA({"w": p}, decay=0.999)
    with torch.no_grad():
        p.fill_(1.0)  # the trained value, far from the initial 0
    for _ in range(200):
        ema.update({"w": p})
    # with a plain 0.999 average the initial value would keep 0.999**200 = 82 % of the weight
    initial_share = 1.0 - ema.shadow["w"]
    expected = 1.0
    for n in range(200):
        expected *= min(0.999, (1 + n) / (10 + n))
    assert torch.allclose(initial_share, torch.full((3,), expected), atol=1e-6)
    assert float(initial_share.max()) < 0.1


def test_decay_reaches_the_configured_value():
    ema = EMA({"w": torch.nn.Parameter(torch.zeros(1))}, decay=0.99)
    assert ema.current_decay() == pytest.approx(0.1)
    ema.num_updates = 10_000
    assert ema.current_decay() == 0.99


def test_state_round_trip_keeps_the_update_count():
    p = torch.nn.Parameter(torch.randn(4))
    ema = EMA({"w": p}, decay=0.9)
    for _ in range(5):
        ema.update({"w": p})
    other = EMA({"w": p}, decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 5 and torch.equal(other.shadow["w"], ema.shadow["w"])
    state = ema.state_dict()
    del state[UPDATES_KEY]
    with pytest.raises(ValueError, match="warm-up"):
        other.load_state_dict(state)
