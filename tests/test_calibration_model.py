"""The tiny GPT: shapes, init, learning, causality, and accounting that agrees with scalecalc.flops."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from scalecalc import flops  # noqa: E402
from scalecalc.calibration.model import GPT, GPTConfig  # noqa: E402
from scalecalc.errors import UnknownName, UsageError  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny matmuls on a shared 2-core machine: one thread is 10x faster than two fighting for cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# every combination of (norm, mlp, pos, tied, bias)
OPTIONS = list(
    itertools.product(["layernorm", "rmsnorm"], ["swiglu", "gelu"], ["rope", "learned"], [False, True], [False, True])
)
# (vocab, seq_len, n_layer, n_head, d_model, d_ff): byte vocab, odd vocab, GPT-2-like, deep-narrow,
# wide-shallow, explicit d_ff
SHAPES = [
    (256, 32, 2, 2, 32, None),
    (97, 16, 1, 1, 16, None),
    (50, 64, 3, 4, 64, None),
    (256, 8, 6, 2, 24, None),
    (300, 24, 1, 8, 128, None),
    (256, 32, 2, 4, 48, 100),
]


def make(norm="layernorm", mlp="swiglu", pos="rope", tied=False, bias=False, **shape) -> GPT:
    torch.manual_seed(0)
    shape = {"vocab_size": 64, "seq_len": 16, "n_layer": 2, "n_head": 2, "d_model": 32} | shape
    return GPT(GPTConfig(norm=norm, mlp=mlp, pos=pos, tied=tied, bias=bias, **shape))


def numel(modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.mark.parametrize("norm,mlp,pos,tied,bias", OPTIONS[::3])
def test_forward_shapes(norm, mlp, pos, tied, bias):
    model = make(norm, mlp, pos, tied, bias)
    idx = torch.randint(0, 64, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 16, 64) and loss is None
    logits, loss = model(idx[:, :5], idx[:, 1:6])  # shorter than seq_len is fine
    assert logits.shape == (3, 5, 64) and loss.ndim == 0


def test_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="seq_len=16"):
        make()(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("tied", [False, True])
def test_loss_at_init_is_near_uniform(tied):
    # N(0, 0.02) weights give near-zero logits, so the loss is close to ln(vocab) (nanoGPT's check)
    model = make(tied=tied, vocab_size=256, seq_len=64)
    g = torch.Generator().manual_seed(1)
    idx, targets = torch.randint(0, 256, (8, 64), generator=g), torch.randint(0, 256, (8, 64), generator=g)
    _, loss = model(idx, targets)
    assert loss.item() == pytest.approx(math.log(256), abs=0.05)


@pytest.mark.parametrize("pos", ["rope", "learned"])
@pytest.mark.parametrize("mlp,norm", [("swiglu", "layernorm"), ("gelu", "rmsnorm")])
def test_a_few_steps_fit_a_repeated_batch(pos, mlp, norm):
    model = make(norm, mlp, pos)
    opt = model.configure_optimizer(lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1, device_type="cpu")
    idx = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(2))
    losses = []
    for _ in range(15):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_attention_is_causal(pos):
    model = make(pos=pos).eval()
    idx = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(3))
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 64
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10])  # the past never sees the future
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_rope_makes_order_matter():
    # with neither RoPE nor learned positions, attention would be permutation-equivariant; RoPE
    # must make the last position's output depend on where the earlier tokens sit
    model = make(pos="rope").eval()
    idx = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    swapped = torch.tensor([[2, 1, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        assert not torch.allclose(model(idx)[0][:, -1], model(swapped)[0][:, -1])


@pytest.mark.parametrize("shape", SHAPES)
def test_param_counts_equal_flops_module_and_torch(shape):
    vocab, seq_len, n_layer, n_head, d_model, d_ff = shape
    for norm, mlp, pos, tied, bias in OPTIONS:
        model = make(
            norm,
            mlp,
            pos,
            tied,
            bias,
            vocab_size=vocab,
            seq_len=seq_len,
            n_layer=n_layer,
            n_head=n_head,
            d_model=d_model,
            d_ff=d_ff,
        )
        counts = model.param_counts()
        where = (shape, norm, mlp, pos, tied, bias)
        assert counts["total"] == sum(p.numel() for p in model.parameters()), where
        # every group against the torch modules that hold it
        embedding = model.wte.weight.numel() + (model.wpe.weight.numel() if model.wpe is not None else 0)
        assert counts["embedding"] == embedding, where
        assert counts["attention"] == numel(b.attn for b in model.blocks), where
        assert counts["mlp"] == numel(b.mlp for b in model.blocks), where
        assert counts["norms"] == numel([model.norm_f, *(n for b in model.blocks for n in (b.norm1, b.norm2))]), where
        assert counts["head"] == (0 if tied else model.lm_head.weight.numel()), where
        # and the groups add up
        assert counts["non_embedding"] == counts["attention"] + counts["mlp"] + counts["norms"], where
        assert counts["total"] == counts["embedding"] + counts["non_embedding"] + counts["head"], where
        assert counts["active"] == counts["total"], where


def test_swiglu_width_follows_openlm_rule():
    # docs/reference.md §5.3: d_ff = 256*ceil(floor(8d/3)/256); d=96 -> 256, d=1024 -> 2816 (2730 rounded up)
    assert make(d_model=96, n_head=2).config.d_ff == 256
    assert GPTConfig(d_model=1024, n_head=16).d_ff == 2816
    assert make(mlp="gelu", d_model=48).config.d_ff == 192


def test_porian_shape_matches_reference_n():
    # docs/reference.md §5.3 [V]: (d=96, l=3), vocab 50,432 -> Porian "standard" N (head counted) 5,173,248
    cfg = GPTConfig(vocab_size=50432, seq_len=2048, n_layer=3, d_model=96, n_head=4)
    model = GPT(cfg)
    counts = model.param_counts()
    assert counts["non_embedding"] - counts["norms"] + counts["head"] == 5_173_248
    assert model.flops_per_token("head") == pytest.approx(6 * (counts["non_embedding"] + 50432 * 96))


def test_flops_per_token_delegates_to_every_convention():
    model = make(vocab_size=256, seq_len=32)
    counts = model.param_counts()
    assert model.flops_per_token() == 6 * counts["total"]
    assert model.flops_per_token("kaplan") == 6 * counts["non_embedding"]
    for name in flops.CONVENTIONS:
        assert model.flops_per_token(name) == flops.training_flops_per_token(model.arch(), name) > 0
    assert model.estimate_mfu(1000.0, 1e12) == pytest.approx(6 * counts["total"] * 1000.0 / 1e12)
    with pytest.raises(UnknownName):
        model.flops_per_token("7nd")


def test_optimizer_decays_only_matrices():
    model = make(bias=True, pos="learned")
    opt = model.configure_optimizer(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, device_type="cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.param_counts()["total"]
    assert opt.defaults["betas"] == (0.9, 0.99)


def test_init_scales_residual_projections():
    model = make(n_layer=8, d_model=128, n_head=4)
    std = model.blocks[0].attn.proj.weight.std().item()
    assert std == pytest.approx(0.02 / math.sqrt(16), rel=0.1)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_bad_options_are_refused():
    with pytest.raises(UnknownName, match="norm"):
        GPTConfig(norm="batchnorm")
    with pytest.raises(UsageError, match="n_head"):
        GPTConfig(d_model=30, n_head=4)


def test_missing_torch_names_the_extra():
    # torch made unimportable in a fresh interpreter: importing the training modules must say which extra
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from scalecalc.errors import MissingDependency\n"
        "try:\n    import scalecalc.calibration.model\nexcept MissingDependency as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "torch is not installed; install it with: pip install 'scalecalc[calibrate]'"


@pytest.mark.parametrize(
    "mlp,pos,tied", [("swiglu", "rope", False), ("gelu", "learned", True), ("swiglu", "learned", True)]
)
def test_head_convention_equals_counted_matmul_flops(mlp, pos, tied):
    # torch's FlopCounterMode counts every matmul of one forward + backward. Porian's "head"
    # convention, 6*(N_non_embedding + vocab*d), must equal it per token once the norm gains (in N,
    # but no matmul) are taken out. (SDPA is not counted by FlopCounterMode on CPU, so the
    # attention term is not checked here.)
    from torch.utils.flop_counter import FlopCounterMode

    model = make(mlp=mlp, pos=pos, tied=tied, vocab_size=256, seq_len=32, n_layer=3, d_model=48, n_head=4)
    idx = torch.randint(0, 256, (2, 32))
    counter = FlopCounterMode(display=False)
    with counter:
        _, loss = model(idx, idx)
        loss.backward()
    per_token = counter.get_total_flops() / idx.numel()
    assert per_token == model.flops_per_token("head") - 6 * model.param_counts()["norms"]
