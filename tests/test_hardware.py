"""GPU catalog (scalecalc/hardware.yaml) and FLOPs <-> GPU-hours <-> dollars arithmetic."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scalecalc import hardware
from scalecalc.errors import UnknownName, UsageError

# Peak dense BF16 TFLOP/s from the vendor datasheets.
DATASHEET_BF16 = {
    "a100-sxm-80gb": 312,
    "a100-pcie-80gb": 312,
    "h100-sxm": 989.4,
    "h100-pcie": 756,
    "h200": 989.4,
    "b200": 2250,
    "mi300x": 1307.4,
    "l40s": 362.05,
    "rtx-4090": 165.2,
}


@pytest.mark.parametrize("name, tflops", sorted(DATASHEET_BF16.items()))
def test_required_gpus_have_datasheet_bf16(name, tflops):
    gpu = hardware.get_gpu(name)
    assert gpu.peak_flops("bf16") == pytest.approx(tflops * 1e12, rel=1e-9)
    assert gpu.source and gpu.title


def test_every_entry_is_dense_consistent_and_sourced():
    raw = yaml.safe_load(resources.files("scalecalc").joinpath("hardware.yaml").read_text())
    for name, entry in raw.items():
        # PyYAML reads "1e12" as a string; the catalog must hold real numbers.
        assert all(isinstance(v, (int, float)) for v in entry["tflops"].values()), name
    for gpu in hardware.load_catalog().values():
        assert gpu.memory_gb > 0 and len(gpu.source) > 20
        assert gpu.default_dtype in gpu.peak
        # Tensor peaks: fp8 is twice the 16-bit rate on every part that has it (a sparse figure
        # copied by mistake would break this), and 16-bit tensor beats plain fp32.
        half = gpu.peak.get("bf16", gpu.peak.get("fp16"))
        if "fp8" in gpu.peak:
            assert gpu.peak["fp8"] / half == pytest.approx(2.0, rel=0.03), gpu.name
        if "fp32" in gpu.peak:
            assert half >= gpu.peak["fp32"], gpu.name
        if gpu.usd_per_gpu_hour is not None:
            assert gpu.price_source and 0.05 < gpu.usd_per_gpu_hour < 50


@pytest.mark.parametrize(
    "text, name",
    [
        ("h100", "h100-sxm"),
        ("H100 SXM", "h100-sxm"),
        ("h100_sxm5", "h100-sxm"),
        ("A100", "a100-sxm-80gb"),
        ("4090", "rtx-4090"),
        ("RTX 4090", "rtx-4090"),
        ("MI300X", "mi300x"),
        ("h100-pcie", "h100-pcie"),
        ("B200", "b200"),
    ],
)
def test_get_gpu_aliases(text, name):
    assert hardware.get_gpu(text).name == name


def test_unknown_gpu_names_option_and_suggests():
    with pytest.raises(UnknownName) as info:
        hardware.get_gpu("h1000")
    assert str(info.value).startswith("--gpu: unknown GPU 'h1000'; did you mean")
    assert "h100" in str(info.value)
    with pytest.raises(UnknownName, match="^--gpu-inference: "):
        hardware.get_gpu("nope", option="--gpu-inference")


def test_dtype_defaults_and_unknown_dtype():
    v100 = hardware.get_gpu("v100")
    assert v100.default_dtype == "fp16" and v100.peak_flops() == 125e12
    with pytest.raises(UnknownName, match="--dtype"):
        v100.peak_flops("bf16")
    assert hardware.get_gpu("h100").peak_flops("fp8") == pytest.approx(1978.9e12)


def test_budget_from_gpu_hours_and_dollars():
    # 1000 H100-hours at 40% MFU: 1000 h * 3600 s/h * 989.4e12 FLOP/s * 0.4
    c = hardware.budget_flops("h100", gpu_hours=1000)
    assert c == pytest.approx(1000 * 3600 * 989.4e12 * 0.4, rel=1e-12)
    c_usd = hardware.budget_flops("h100", usd=2500, usd_per_gpu_hour=2.5, mfu=0.5)
    assert c_usd == pytest.approx(1000 * 3600 * 989.4e12 * 0.5, rel=1e-12)
    many = hardware.budget_flops("a100", gpu_hours=np.array([1.0, 10.0, 100.0]))
    np.testing.assert_allclose(many / many[0], [1, 10, 100])


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"gpu_hours": 10, "mfu": 0}, "--mfu"),
        ({"gpu_hours": 10, "mfu": 1.5}, "--mfu"),
        ({"gpu_hours": -1}, "--gpu-hours"),
        ({"usd": 10, "usd_per_gpu_hour": 0}, "--usd-per-gpu-hour"),
        ({}, "--gpu-hours"),
        ({"gpu_hours": 1, "usd": 1}, "--usd"),
    ],
)
def test_budget_errors_name_the_option(kwargs, flag):
    with pytest.raises(UsageError, match=flag):
        hardware.budget_flops("h100", **kwargs)


def test_usd_budget_uses_the_catalog_price_and_errors_only_without_one():
    assert hardware.budget_flops("h100", usd=2.99) == pytest.approx(hardware.budget_flops("h100", gpu_hours=1.0))
    with pytest.raises(UsageError, match="--usd-per-gpu-hour"):
        hardware.budget_flops("v100-sxm2", usd=1e6)


def test_mfu_of_one_is_allowed():
    assert hardware.budget_flops("h100", gpu_hours=1, mfu=1.0) == pytest.approx(3600 * 989.4e12)


@settings(max_examples=50, deadline=None)
@given(
    hours=st.floats(1e-2, 1e8),
    gpus=st.integers(1, 100_000),
    mfu=st.floats(0.05, 1.0),
    name=st.sampled_from(sorted(DATASHEET_BF16)),
)
def test_training_time_inverts_budget(hours, gpus, mfu, name):
    flops = hardware.budget_flops(name, gpu_hours=hours, mfu=mfu)
    t = hardware.training_time(flops, name, gpus=gpus, mfu=mfu, usd_per_gpu_hour=3.0)
    assert t["gpu_hours"] == pytest.approx(hours, rel=1e-12)
    assert t["wall_clock_hours"] * gpus == pytest.approx(hours, rel=1e-12)
    assert t["wall_clock_days"] * 24 == pytest.approx(t["wall_clock_hours"], rel=1e-12)
    assert t["usd"] == pytest.approx(3.0 * hours, rel=1e-12) and not t["price_assumed"]


def test_training_time_prices():
    t = hardware.training_time(1e24, "h100")
    assert t["price_assumed"] and t["usd_per_gpu_hour"] == hardware.get_gpu("h100").usd_per_gpu_hour
    assert t["usd"] == pytest.approx(t["gpu_hours"] * t["usd_per_gpu_hour"])
    no_price = hardware.training_time(1e24, "h20")
    assert no_price["usd"] is None and not no_price["price_assumed"]
    with pytest.raises(UsageError, match="--gpus"):
        hardware.training_time(1e24, "h100", gpus=1.5)
    with pytest.raises(UsageError, match="--mfu"):
        hardware.training_time(1e24, "h100", mfu=2)


def test_usd_per_flop_matches_training_time():
    w = hardware.usd_per_flop("h100", mfu=0.5, usd_per_gpu_hour=2.0)
    t = hardware.training_time(1e22, "h100", mfu=0.5, usd_per_gpu_hour=2.0)
    assert w * 1e22 == pytest.approx(t["usd"], rel=1e-12)
    with pytest.raises(UsageError, match="--usd-per-gpu-hour"):
        hardware.usd_per_flop("h20")


def test_plan_path_modules_do_not_import_scipy_or_sympy():
    code = (
        "import sys\n"
        "import scalecalc.hardware, scalecalc.hparams, scalecalc.inference, scalecalc.datalimit\n"
        "scalecalc.hardware.load_catalog()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'scipy', 'sympy', 'torch',"
        " 'matplotlib', 'typer', 'rich'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
