"""The planner reproduces the published numbers of docs/reference.md §10 and §2-§7, from the CLI's JSON."""

from __future__ import annotations

import math

import pytest

from tests.helpers import run_row, run_rows

# Hoffmann et al. 2022 Table 3 (approach 1): (params, FLOPs). docs/reference.md §2.3.
TABLE3 = [
    (400e6, 1.92e19),
    (1e9, 1.21e20),
    (10e9, 1.23e22),
    (67e9, 5.76e23),
    (175e9, 3.85e24),
    (280e9, 9.90e24),
    (520e9, 3.43e25),
    (1e12, 1.27e26),
    (10e12, 1.30e28),
]


def test_llama3_at_3_8e25_gives_16_55T_tokens_and_402B_params():
    row = run_row("plan", "--compute", "3.8e25", "--law", "llama3")
    assert row["flops_convention"] == "llama3"
    assert row["tokens"] == pytest.approx(16.55e12, rel=0.005)  # paper: 16.55T
    assert row["params"] == pytest.approx(402e9, rel=0.005)  # paper: 402B under C = 5.711 N D


def test_hoffmann_a1_reproduces_every_row_of_table_3_within_5_percent():
    rows = run_rows("plan", *[a for _, c in TABLE3 for a in ("--compute", str(c))], "--law", "hoffmann2022-a1")
    for (params, _), row in zip(TABLE3, rows):
        assert row["params"] == pytest.approx(params, rel=0.05)
        assert row["compute"] == pytest.approx(6 * row["params"] * row["tokens"], rel=1e-12)


def test_hoffmann_67B_row_tokens_are_1_43T_not_the_printed_1_5T():
    row = run_row("plan", "--compute", "5.76e23", "--law", "hoffmann2022-a1")
    assert row["tokens"] == pytest.approx(1.43e12, rel=0.03)  # docs/reference.md §2.3: 1.5T rounds 1.43T


def test_hoffmann_a3_tex_constants_give_40B_at_gopher_budget():
    row = run_row("plan", "--compute", "5.76e23", "--law", "hoffmann2022-a3")
    assert row["params"] == pytest.approx(40.36e9, rel=0.002)  # Fig. 4 caption: 40B
    assert row["tokens"] == pytest.approx(2.379e12, rel=0.002)


def test_hoffmann_a3_rounded_constants_give_32_2B():
    row = run_row("plan", "--compute", "5.76e23", "--law", "hoffmann2022-a3-rounded")
    assert row["params"] == pytest.approx(32.19e9, rel=0.002)
    assert row["tokens_per_param"] == pytest.approx(92.7, rel=0.002)


def test_besiroglu_tokens_per_param_18_4_at_gopher_budget():
    row = run_row("plan", "--compute", "5.76e23")  # the default law
    assert row["law"] == "besiroglu2024"
    assert row["tokens_per_param"] == pytest.approx(18.4, abs=0.05)
    assert row["params"] == pytest.approx(7.23e10, rel=0.005)


@pytest.mark.parametrize("compute,ratio", [(1e21, 21.6), (3.8e25, 16.5)])
def test_besiroglu_closed_form_vectors(compute, ratio):
    row = run_row("plan", "--compute", str(compute))
    assert row["tokens_per_param"] == pytest.approx(ratio, abs=0.06)


def test_kaplan_4_68B_at_1e21_flops():
    row = run_row("plan", "--compute", "1e21", "--law", "kaplan2020")
    assert row["params"] == pytest.approx(4.683e9, rel=1e-3)  # Chinchilla App. D.4
    assert row["params_kind"] == "non_embedding"


@pytest.mark.parametrize(
    "compute,m_opt,d_opt", [(1e17, 1.404e8, 7.123e8), (1e20, 5.251e9, 1.905e10), (1e24, 6.568e11, 1.523e12)]
)
def test_deepseek_eq4(compute, m_opt, d_opt):
    row = run_row("plan", "--compute", str(compute), "--law", "deepseek2024")
    assert row["flops_per_token"] == pytest.approx(m_opt, rel=1e-3)  # M_opt, FLOPs/token
    assert row["tokens"] == pytest.approx(d_opt, rel=1e-3)
    assert row["compute"] == pytest.approx(row["flops_per_token"] * row["tokens"], rel=1e-9)


def test_porian_exponent_is_0_497():
    rows = run_rows("plan", "--compute", "1e18", "--compute", "1e24", "--law", "porian2024")
    a = math.log(rows[1]["params"] / rows[0]["params"]) / math.log(1e6)
    assert a == pytest.approx(0.497, abs=5e-4)


def test_muennighoff_unconstrained_ratio_is_19_6():
    row = run_row("plan", "--compute", "1e22", "--law", "muennighoff2023", "--unique-tokens", "1e30")
    assert row["tokens_per_param"] == pytest.approx(19.6, abs=0.05)  # G^2 = 0.05099, docs/reference.md §8


def test_muennighoff_scarce_data_trains_more_epochs_on_a_smaller_model():
    free = run_row("plan", "--compute", "1e23", "--law", "muennighoff2023", "--unique-tokens", "1e30")
    scarce = run_row("plan", "--compute", "1e23", "--law", "muennighoff2023", "--unique-tokens", "1e11")
    assert scarce["loss"] > free["loss"]
    assert any("epochs" in w for w in scarce["warnings"])


def test_loss_query_inverts_compute_query():
    row = run_row("plan", "--compute", "1e23")
    back = run_row("plan", "--loss", repr(row["loss"]))
    assert back["compute"] == pytest.approx(1e23, rel=1e-6)


def test_loss_at_published_points():
    # docs/reference.md §10: loss at (N=70e9, D=1.4e12): Epoch constants 1.9739
    from scalecalc.laws import load_law

    law = load_law("besiroglu2024")
    assert float(law.evaluate("loss", N=70e9, D=1.4e12)) == pytest.approx(1.9739, abs=1e-4)
    assert float(load_law("hoffmann2022-a3-rounded").evaluate("loss", N=70e9, D=1.4e12)) == pytest.approx(
        1.9366, abs=1e-4
    )
    assert float(load_law("hoffmann2022-a3").evaluate("loss", N=1e9, D=20e9)) == pytest.approx(2.5307, abs=1e-4)


def test_kaplan_eq_1_5_vector():
    from scalecalc.laws import load_law

    assert float(load_law("kaplan2020").evaluate("loss", N=1e9, D=1e10)) == pytest.approx(2.4197, abs=1e-4)


def test_ratio_query_costs_loss_and_compute():
    row = run_row("plan", "--compute", "1e24", "--tokens-per-param", "200")
    assert row["tokens_per_param"] == pytest.approx(200, rel=1e-9)
    assert row["compute"] == pytest.approx(6 * row["params"] * row["tokens"], rel=1e-9)
    assert row["loss"] > row["loss_optimal"]
    assert row["compute_overhead"] > 1.0


def test_warnings_name_extrapolation_and_convention():
    row = run_row("plan", "--compute", "1e26", "--law", "besiroglu2024", "--flops", "attention")
    text = " ".join(row["warnings"])
    assert "decades beyond the law's fitted compute range" in text
    assert "attention FLOP convention instead of the law's own 6nd" in text


def test_attention_convention_changes_the_answer():
    plain = run_row("plan", "--compute", "1e22")
    attn = run_row("plan", "--compute", "1e22", "--flops", "attention", "--seq-len", "8192")
    assert attn["params"] < plain["params"]  # attention FLOPs make each token dearer
    assert attn["compute"] == pytest.approx(attn["flops_per_token"] * attn["tokens"], rel=1e-9)
