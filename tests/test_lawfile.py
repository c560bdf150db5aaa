"""One law-file contract (scalecalc/laws/lawfile.py): the name a writer accepts is the name the
loader loads, and ``fit`` and ``calibrate fit`` write the same provenance block."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalecalc.cli import app
from scalecalc.errors import LawFileError, UsageError
from scalecalc.laws import load_law
from scalecalc.laws.lawfile import check_name, provenance, suggest_name, write_law

EPOCH = str(Path(__file__).parent / "data" / "chinchilla_fig4_epoch_extracted.csv")
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
runner = CliRunner()


def _law(name: str) -> dict:
    return {
        "name": name,
        "source": "test",
        "form": "chinchilla",
        "loss": "E + A / N**alpha + B / D**beta",
        "constants": {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28},
    }


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="aZz09._- /é", min_size=0, max_size=12))
def test_writer_and_loader_agree_on_every_name(tmp_path_factory, name):
    """A name is written if and only if it loads; a refused name is refused by both, and its
    suggested replacement is accepted by both."""
    folder = tmp_path_factory.mktemp("law")
    path = folder / "law.yaml"
    try:
        write_law(path, _law(name))
        written = True
    except UsageError:
        written = False
    if written:
        assert load_law(str(path)).name == name
    else:
        assert not path.exists() and not list(folder.iterdir())  # nothing half-written
        path.write_text(yaml.safe_dump(_law(name)))
        with pytest.raises(LawFileError, match="name"):
            load_law(str(path))
        good = suggest_name(name)
        assert check_name(good) == good
        write_law(path, _law(good))
        assert load_law(str(path)).name == good


def test_provenance_block_shape():
    block = provenance("scalecalc fit", {"torch": "2.13.0"}, data="runs.csv", delta=None)
    assert list(block)[:3] == ["tool", "date", "versions"]
    assert DATE.match(block["date"]) and block["tool"] == "scalecalc fit"
    assert {"scalecalc", "numpy", "scipy", "torch"} <= block["versions"].keys()
    assert block["data"] == "runs.csv" and "delta" not in block


def test_fit_writes_the_shared_provenance(tmp_path):
    law = tmp_path / "law.yaml"
    res = runner.invoke(
        app, ["fit", EPOCH, "--grid", "coarse", "--bootstrap", "0", "-o", str(law), "--name", "epoch-refit", "--json"]
    )
    assert res.exit_code == 0, res.stderr
    prov = yaml.safe_load(law.read_text())["provenance"]
    assert prov["tool"] == "scalecalc fit" and DATE.match(prov["date"])
    assert {"scalecalc", "numpy", "scipy"} <= prov["versions"].keys()
    assert load_law(str(law)).name == "epoch-refit"


def test_calibrate_fit_refuses_a_name_plan_would_refuse(tmp_path):
    """`calibrate fit --name "my law"` used to write a file that `plan --law` then refused."""
    res = runner.invoke(app, ["calibrate", "fit", str(tmp_path), "--name", "my law"])
    assert res.exit_code == 2
    assert res.stderr.startswith("Error: --name: 'my law' must use only lower-case letters")
    assert "'my-law'" in res.stderr and res.stdout == ""
    assert not list(tmp_path.iterdir())
