"""`scalecalc flops` through the real CLI (typer CliRunner)."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from scalecalc.cli import app
from scalecalc.flops import CONVENTIONS

runner = CliRunner()
GPT2 = [
    "flops",
    "--n-layer",
    "12",
    "--d-model",
    "768",
    "--vocab",
    "50257",
    "--seq-len",
    "1024",
    "--tied",
    "--pos",
    "learned",
    "--bias",
]


def run(*args):
    return runner.invoke(app, list(args))


def test_json_gpt2_small():
    r = run(*GPT2, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {"arch", "params", "flops_per_token", "ratio_to_6n", "items"} <= set(doc)
    p = doc["params"]
    assert p["total"] == 124_439_808  # GPT-2 small
    assert sum(p[g] for g in ("embedding", "attention", "mlp", "norms", "head")) == p["total"]
    assert p["non_embedding"] == p["attention"] + p["mlp"] + p["norms"]
    assert set(doc["flops_per_token"]) == set(CONVENTIONS)
    assert doc["flops_per_token"]["6nd"] == 6 * p["total"]
    assert doc["flops_per_token"]["kaplan"] == 6 * p["non_embedding"]
    assert doc["ratio_to_6n"]["6nd"] == 1.0
    assert doc["inference_flops_per_token"] == 2 * p["total"]
    assert [i["name"] for i in doc["items"]][0] == "embed"
    assert doc["arch"]["n_heads"] == 12 and doc["arch"]["head_dim"] == 64
    assert r.stderr == ""
    # --format json is the same document as --json
    assert run(*GPT2, "--format", "json").stdout == r.stdout


def test_csv_one_row_per_convention():
    r = run(*GPT2, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["convention"] for row in rows] == list(CONVENTIONS)
    assert float(rows[0]["ratio_to_6n"]) == 1.0


def test_table_lists_every_convention():
    r = run(*GPT2)
    assert r.exit_code == 0, r.output
    for name in CONVENTIONS:
        assert name in r.stdout
    assert "124,439,808" in r.stdout
    assert "Kaplan et al. 2020 Table 1" in r.stdout and "Appendix F" in r.stdout


def test_heads_not_dividing_d_model():
    r = run("flops", "--n-layer", "12", "--d-model", "1000", "--heads", "12")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr == (
        "Error: --heads: 12 does not divide --d-model 1000; choose heads dividing d_model (or give --head-dim)\n"
    )


def test_zero_layers():
    r = run("flops", "--n-layer", "0", "--d-model", "768")
    assert r.exit_code == 2
    assert r.stderr == "Error: --n-layer: 0 is out of range; give a whole number in [1, 1e+07]\n"


def test_missing_shape():
    r = run("flops", "--d-model", "768")
    assert r.exit_code == 2
    assert r.stderr == "Error: --n-layer is required (or give --hf-config PATH)\n"


def test_bad_mlp_choice():
    r = run("flops", "--n-layer", "2", "--d-model", "128", "--mlp", "relu")
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1


def test_malformed_hf_config(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"hidden_size": 4096,')
    r = run("flops", "--hf-config", str(bad))
    assert r.exit_code == 2
    assert r.stderr.startswith(f"Error: --hf-config {bad}: not valid JSON")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output


def test_hf_config_missing_key_and_absent_file(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"hidden_size": 64}))
    r = run("flops", "--hf-config", str(cfg))
    assert r.exit_code == 2
    assert "missing key 'num_hidden_layers'" in r.stderr
    r = run("flops", "--hf-config", str(tmp_path / "nope.json"))
    assert r.exit_code == 2 and r.stderr.startswith("Error: ")


def test_hf_config_with_override(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "num_hidden_layers": 32,
                "hidden_size": 4096,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "intermediate_size": 14336,
                "vocab_size": 128256,
                "max_position_embeddings": 8192,
                "tie_word_embeddings": False,
                "hidden_act": "silu",
                "rms_norm_eps": 1e-5,
            }
        )
    )
    r = run("flops", "--hf-config", str(cfg), "--seq-len", "4096", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["params"]["total"] == 8_030_261_248  # Llama 3 8B
    assert doc["arch"]["seq_len"] == 4096 and doc["arch"]["mlp"] == "swiglu"
    # attention convention = 6·(N_non_embedding + V·d + seq·d·L): the override is used
    p, a = doc["params"], doc["arch"]
    expected = 6 * (p["non_embedding"] + a["vocab"] * 4096 + 4096 * 4096 * 32)
    assert doc["flops_per_token"]["attention"] == expected


def test_help_has_example():
    r = run("flops", "--help")
    assert r.exit_code == 0
    assert "Example" in r.stdout and "--hf-config" in r.stdout
