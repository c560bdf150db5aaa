"""The stacked model (scalecalc.calibration.stacked): K GPTs as rows of one buffer.

Its forward and gradients must be each member's own GPT forward and gradients (to float
rounding) for every architecture switch; its AdamW must be torch's AdamW per member (own lr,
betas, weight decay, step count, clipping), fused or not; members must move in and out of the
solo GPT + AdamW pair exactly, so that checkpoints keep the solo format.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from scalecalc.calibration.model import GPT, GPTConfig  # noqa: E402
from scalecalc.calibration.stacked import Stack  # noqa: E402

pytestmark = pytest.mark.torch

VARIANTS = [
    dict(norm="layernorm", mlp="gelu", pos="rope", tied=False, bias=False),
    dict(norm="rmsnorm", mlp="swiglu", pos="rope", tied=False, bias=False),
    dict(norm="layernorm", mlp="gelu", pos="learned", tied=True, bias=True),
    dict(norm="rmsnorm", mlp="swiglu", pos="learned", tied=True, bias=False),
]
V, T, B = 64, 16, 3


def _members(k: int, variant: dict, lrs=None, wds=None, fused=False):
    models, opts = [], []
    for i in range(k):
        torch.manual_seed(100 + i)
        model = GPT(GPTConfig(vocab_size=V, seq_len=T, n_layer=2, n_head=2, d_model=16, **variant))
        lr = lrs[i] if lrs else 1e-2
        wd = wds[i] if wds else 0.1
        opts.append(model.configure_optimizer(lr, (0.9, 0.95), wd, "cpu"))
        models.append(model)
    return models, opts


def _batch(k: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (k, B, T), generator=g), torch.randint(0, V, (k, B, T), generator=g)


def _flat_grads(model, opt):
    return torch.cat([p.grad.reshape(-1) for group in opt.param_groups for p in group["params"]])


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_stacked_forward_and_gradients_are_each_members_own(variant):
    models, opts = _members(3, variant)
    stack = Stack.from_members(models, opts, [0, 0, 0], fused=False)
    x, y = _batch(3)
    losses = stack.losses(x, y)
    stack.backward(losses)
    for k, (model, opt) in enumerate(zip(models, opts)):
        _, loss = model(x[k], y[k])
        loss.backward()
        assert float(losses[k].detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
        torch.testing.assert_close(stack.grad[k], _flat_grads(model, opt), rtol=1e-4, atol=1e-6)
    assert len({round(float(v), 6) for v in losses.detach()}) == 3  # the members really differ


@pytest.mark.parametrize("fused", [False, True])
def test_one_stacked_step_is_torch_adamw_per_member(fused):
    """Different learning rates, weight decays and clipping per member, against each member's
    own GPT, clip_grad_norm_ and torch.optim.AdamW."""
    lrs, wds, clips = [1e-2, 3e-3, 1e-3], [0.1, 0.0, 0.3], [1.0, 0.0, 0.05]
    models, opts = _members(3, VARIANTS[1], lrs, wds)
    stack = Stack.from_members(models, opts, [0, 0, 0], fused=fused)
    for step in range(3):
        x, y = _batch(3, seed=step)
        stack.backward(stack.losses(x, y))
        stack.step([o.param_groups for o in opts], clips)
        for k, (model, opt) in enumerate(zip(models, opts)):
            _, loss = model(x[k], y[k])
            loss.backward()
            if clips[k] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clips[k])
            opt.step()
            opt.zero_grad(set_to_none=True)
    for k, opt in enumerate(opts):
        weights = torch.cat([p.detach().reshape(-1) for g in opt.param_groups for p in g["params"]])
        torch.testing.assert_close(stack.flat[k], weights, rtol=1e-4, atol=1e-6)
    assert stack.steps == [3, 3, 3]
    assert float(stack.grad.abs().sum()) == 0.0  # zeroed for the next step


def test_members_move_in_and_out_of_the_solo_pair_exactly():
    """store_member writes torch's own AdamW state; a new stack loaded from it is identical."""
    models, opts = _members(2, VARIANTS[0])
    stack = Stack.from_members(models, opts, [0, 0], fused=False)
    for step in range(2):
        x, y = _batch(2, seed=step)
        stack.backward(stack.losses(x, y))
        stack.step([o.param_groups for o in opts], [1.0, 1.0])
    for k in range(2):
        stack.store_member(k, models[k], opts[k])
        assert {float(s["step"]) for s in opts[k].state.values()} == {2.0}
        # the state survives torch's own state_dict round trip (the checkpoint format)
        fresh_model = GPT(models[k].config)  # other initial weights, replaced by the checkpoint's
        fresh_model.load_state_dict(models[k].state_dict())
        fresh_opt = fresh_model.configure_optimizer(1e-2, (0.9, 0.95), 0.1, "cpu")
        fresh_opt.load_state_dict(opts[k].state_dict())
        models[k], opts[k] = fresh_model, fresh_opt
    again = Stack.from_members(models, opts, [2, 2], fused=False)
    assert torch.equal(again.flat, stack.flat)
    assert torch.equal(again.exp_avg, stack.exp_avg)
    assert torch.equal(again.exp_avg_sq, stack.exp_avg_sq)


def test_selecting_members_keeps_their_rows_and_steps():
    models, opts = _members(3, VARIANTS[2])
    stack = Stack.from_members(models, opts, [5, 6, 7], fused=False)
    x, y = _batch(3)
    full = stack.losses(x, y).detach()
    two = stack.select([2, 0])
    assert two.steps == [7, 5]
    assert torch.equal(two.flat, stack.flat[[2, 0]])
    torch.testing.assert_close(two.losses(x[[2, 0]], y[[2, 0]]).detach(), full[[2, 0]])


def test_a_nan_member_does_not_touch_its_mates():
    models, opts = _members(2, VARIANTS[0])
    clean = Stack.from_members(models[1:], opts[1:], [0], fused=False)
    stack = Stack.from_members(models, opts, [0, 0], fused=False)
    with torch.no_grad():
        stack.flat[0, :10] = float("nan")
    x, y = _batch(2)
    losses = stack.losses(x, y)
    stack.backward(losses)
    stack.step([o.param_groups for o in opts], [1.0, 1.0])
    clean.backward(clean.losses(x[1:], y[1:]))
    clean.step([opts[1].param_groups], [1.0])
    assert not torch.isfinite(losses[0].detach())
    assert torch.equal(stack.flat[1], clean.flat[0])
