"""Hyperparameter rules against docs/reference.md §1.6, §1.8, §5.4, §7 and §10."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalecalc import hparams
from scalecalc.errors import UnknownName, UsageError

log_uniform = lambda lo, hi: st.floats(np.log10(lo), np.log10(hi)).map(lambda x: 10.0**x)  # noqa: E731


# -- Porian et al. 2024 (docs/reference.md §5.4, §10) ------------------------------------------------------
# Tolerances are half a unit of the last digit docs/reference.md prints.
@pytest.mark.parametrize(
    "N, lr, lr_tol, seqs, seqs_tol",
    [
        (1e7, 1.117e-2, 5e-6, 30.8, 0.05),
        (1e8, 4.88e-3, 5e-6, 156, 0.5),
        (1e9, 2.13e-3, 5e-6, 786, 0.5),
        (1e10, 9.29e-4, 5e-7, 3965, 0.5),
    ],
)
def test_porian_vectors(N, lr, lr_tol, seqs, seqs_tol):
    out = hparams.porian2024(N)
    assert out["peak_lr"] == pytest.approx(lr, abs=lr_tol)
    assert out["batch_sequences_2048"] == pytest.approx(seqs, abs=seqs_tol)
    # 0.00037 sequences x 2048 tokens = 0.75776 tokens; docs/reference.md §5.4 (and small-doge) print 0.7576
    assert out["batch_tokens"] == pytest.approx(0.7576 * N**0.703, rel=3e-4)
    assert out["warmup_tokens"] == N


def test_porian_beta2_switches_at_128_sequences():
    N_at_128 = (128 / 0.00037) ** (1 / 0.703)
    out = hparams.porian2024(np.array([1e7, N_at_128 * 0.99, N_at_128 * 1.01, 1e10]))
    np.testing.assert_array_equal(out["beta2"], [0.99, 0.99, 0.95, 0.95])


# -- DeepSeek LLM (docs/reference.md §7, §10) ------------------------------------------------------------
@pytest.mark.parametrize("C, eta, B", [(1e17, 2.338e-3, 1.062e5), (1e20, 9.86e-4, 1.017e6), (1e24, 3.118e-4, 2.069e7)])
def test_deepseek_vectors(C, eta, B):
    out = hparams.deepseek2024(C)
    assert out["peak_lr"] == pytest.approx(eta, rel=1e-3)
    assert out["batch_tokens"] == pytest.approx(B, rel=1e-3)


@pytest.mark.parametrize(
    "n_layer, d_model, used_batch_seqs, used_lr",
    [(30, 4096, 2304, 4.2e-4), (95, 8192, 4608, 3.2e-4)],  # DeepSeek 7B and 67B, Table 2
)
def test_deepseek_released_models_within_10_percent(n_layer, d_model, used_batch_seqs, used_lr):
    seq = 4096
    M = 72 * n_layer * d_model**2 + 12 * n_layer * d_model * seq  # eq. 2, FLOPs/token
    h = hparams.recommend("deepseek2024", C=M * 2e12, tokens=2e12, seq_len=seq)
    assert h.batch_tokens == pytest.approx(used_batch_seqs * seq, rel=0.10)
    assert h.peak_lr == pytest.approx(used_lr, rel=0.10)
    assert h.warmup_steps == 2000 and h.beta2 == 0.95
    assert h.steps == pytest.approx(2e12 / h.batch_tokens)


# -- Kaplan et al. 2020 (docs/reference.md §1.6, §1.8, §10) ------------------------------------------------
@pytest.mark.parametrize("L, B", [(2, 7.37e6), (3, 1.07e6), (4, 2.72e5), (10, 3.46e3)])
def test_kaplan_critical_batch_vectors(L, B):
    # §10 vectors use the text's B* = 2e8; the default is Table 5's 2.1e8, 5% higher.
    assert hparams.critical_batch(L, Bstar=2e8) == pytest.approx(B, rel=2e-3)
    assert hparams.critical_batch(L) == pytest.approx(1.05 * B, rel=2e-3)


def test_kaplan_table5_bstar_reproduces_section_1_6_example():
    # docs/reference.md §1.6: N = 1e8, S = 1e5, B = 2^19 => L = 2.961, B_crit = 1.20e6, S_min = 3.05e4.
    b_crit = hparams.critical_batch(2.961)
    assert b_crit == pytest.approx(1.20e6, rel=5e-3)
    assert 1e5 / hparams.batch_cost(2**19, b_crit).steps_ratio == pytest.approx(3.05e4, rel=5e-3)


def test_kaplan_lr_rule():
    assert hparams.kaplan_lr(1e8) == pytest.approx(6.7e-4, rel=1e-2)
    lr = hparams.kaplan_lr(np.array([1.1e10, 1.3e10]))
    assert lr[0] > 0 and np.isnan(lr[1])  # the rule hits zero near N = 1.2e10 (natural log)


def test_batch_cost_at_critical_is_two():
    cost = hparams.batch_cost(3e6, 3e6)
    assert cost.steps_ratio == 2 and cost.compute_ratio == 2


@settings(max_examples=60, deadline=None)
@given(B=log_uniform(1e3, 1e9), b_crit=log_uniform(1e3, 1e9))
def test_batch_cost_satisfies_eq_5_1(B, b_crit):
    # (S/S_min − 1)(E/E_min − 1) = 1 (Kaplan eq. 5.1)
    cost = hparams.batch_cost(B, b_crit)
    assert (cost.steps_ratio - 1) * (cost.compute_ratio - 1) == pytest.approx(1.0, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(N=log_uniform(1e6, 1e12), C=log_uniform(1e16, 1e27))
def test_rules_are_monotone(N, C):
    p0, p1 = hparams.porian2024(N), hparams.porian2024(2 * N)
    assert p1["peak_lr"] < p0["peak_lr"] and p1["batch_tokens"] > p0["batch_tokens"]
    d0, d1 = hparams.deepseek2024(C), hparams.deepseek2024(2 * C)
    assert d1["peak_lr"] < d0["peak_lr"] and d1["batch_tokens"] > d0["batch_tokens"]


# -- recommend / registry ------------------------------------------------------------------------
def test_recommend_porian_with_critical_batch_fields():
    h = hparams.recommend("porian2024", N=1e9, L=2.5, tokens=2e10, seq_len=4096)
    assert h.rule == "porian2024" and "Porian" in h.source and h.notes
    assert h.batch_sequences == round(float(h.batch_tokens) / 4096)
    assert h.warmup_tokens == 1e9 and h.warmup_steps == pytest.approx(1e9 / h.batch_tokens)
    assert h.steps == pytest.approx(2e10 / h.batch_tokens)
    assert h.critical_batch_tokens == pytest.approx(hparams.critical_batch(2.5))
    assert h.steps_at_critical == pytest.approx(2 * h.steps / h.steps_ratio)
    assert h.tokens_at_critical == pytest.approx(2 * 2e10 / h.compute_ratio)


def test_recommend_kaplan_trains_at_critical_batch():
    h = hparams.recommend("kaplan2020", N=1e8, L=np.array([3.0, 2.5]), tokens=1e10)
    np.testing.assert_allclose(h.batch_tokens, hparams.critical_batch([3.0, 2.5]))
    np.testing.assert_allclose(h.steps_ratio, 2.0)
    np.testing.assert_allclose(h.steps_at_critical, h.steps)  # already at B_crit
    assert h.warmup_steps.shape == (2,) and np.all(h.warmup_steps == 3000)
    with pytest.raises(UsageError, match="needs a predicted loss"):
        hparams.recommend("kaplan2020", N=1e8)


def test_extrapolation_is_noted():
    inside = hparams.recommend("porian2024", N=5e7)
    assert not any("extrapolated" in n for n in inside.notes)
    far = hparams.recommend("porian2024", N=np.array([5e7, 1.1e10]))
    assert any("extrapolated 2.0 decades" in n for n in far.notes)
    ds = hparams.recommend("deepseek2024", C=1e24)
    assert any("extrapolated 4.7 decades" in n for n in ds.notes)


def test_recommend_is_vectorised():
    N = np.geomspace(1e7, 1e11, 1000)
    h = hparams.recommend("porian2024", N=N, tokens=20 * N)
    assert h.batch_tokens.shape == h.steps.shape == h.beta2.shape == (1000,)
    np.testing.assert_allclose(h.steps * h.batch_tokens, 20 * N)


def test_rule_registry_errors():
    assert set(hparams.RULES) == {"porian2024", "deepseek2024", "kaplan2020"}
    assert hparams.get_rule("DeepSeek2024").name == "deepseek2024"
    with pytest.raises(UnknownName, match=r"^--hparams: unknown hyperparameter rule 'porian'.*porian2024"):
        hparams.get_rule("porian")
    with pytest.raises(UsageError, match="--compute"):
        hparams.recommend("deepseek2024", N=1e9)
