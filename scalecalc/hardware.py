"""GPU catalog and the arithmetic between FLOPs, GPU-hours, wall clock and dollars.

The catalog (``hardware.yaml``, shipped with the package) holds each accelerator's peak **dense**
tensor throughput per dtype, taken from the vendor datasheet named in its ``source`` field. Vendors
print the 2:4-sparse figure first since Ampere; dense is what LLM training runs at.

Model FLOP utilisation (MFU, Chowdhery et al. 2022, PaLM App. B) links model FLOPs to time::

    C = gpu_hours * 3600 [s/h] * peak [FLOP/s] * mfu        (1)

so a budget in GPU-hours or dollars becomes FLOPs, and FLOPs become GPU-hours, wall clock on K GPUs
and dollars. The default MFU of 0.4 is a typical large-scale figure (PaLM reports 46 %, Llama 3
38-43 % on H100 in BF16); it is an assumption that every result prints.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalecalc.errors import UnknownName, UsageError

DEFAULT_MFU = 0.4  # model FLOP utilisation assumed when the user gives none
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Gpu:
    """One accelerator of the catalog.

    Attributes
    ----------
    name : str
        Canonical catalog key, e.g. ``"h100-sxm"``.
    title : str
        Human-readable name, e.g. ``"NVIDIA H100 SXM 80GB"``.
    peak : dict[str, float]
        Peak dense throughput per dtype in FLOP/s (``"bf16"``, ``"fp16"``, ``"tf32"``, ``"fp32"``,
        ``"fp8"`` where the part supports it).
    memory_gb : float
        Device memory in GB.
    source : str
        The datasheet the figures come from.
    default_dtype : str
        Training dtype used when the caller names none (``"bf16"``; ``"fp16"`` on V100).
    usd_per_gpu_hour : float or None
        Indicative on-demand rental price, USD per GPU-hour; an assumption, see ``price_source``.
    price_source : str or None
        Where the indicative price comes from.
    aliases : tuple[str, ...]
        Other names accepted by :func:`get_gpu`.
    """

    name: str
    title: str
    peak: dict = field(compare=False)
    memory_gb: float
    source: str
    default_dtype: str = "bf16"
    usd_per_gpu_hour: float | None = None
    price_source: str | None = None
    aliases: tuple = ()

    def peak_flops(self, dtype: str | None = None) -> float:
        """Peak dense FLOP/s for ``dtype`` (default: :attr:`default_dtype`).

        Raises :class:`UnknownName` naming ``--dtype`` if the part has no figure for that dtype.
        """
        dtype = (dtype or self.default_dtype).lower()
        if dtype not in self.peak:
            raise UnknownName(f"dtype on {self.name}", dtype, self.peak, "--dtype")
        return self.peak[dtype]


def _key(text: str) -> str:
    # "H100 SXM", "h100_sxm" and "h100-sxm" are the same GPU.
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


@functools.lru_cache(maxsize=1)
def load_catalog() -> dict[str, Gpu]:
    """The packaged GPU catalog, ``{name: Gpu}``, read once with the safe YAML loader."""
    import yaml  # yaml is needed on the plan path anyway; keep the import local to this loader

    # a plain path, as for the law files: importlib.resources alone costs ~5 ms of start-up
    text = (Path(__file__).parent / "hardware.yaml").read_text(encoding="utf-8")
    catalog = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the safe loader, in C when libyaml is present
    for name, entry in yaml.load(text, Loader=loader).items():
        catalog[name] = Gpu(
            name=name,
            title=entry["title"],
            peak={dtype: float(tf) * 1e12 for dtype, tf in entry["tflops"].items()},
            memory_gb=float(entry["memory_gb"]),
            source=entry["source"],
            default_dtype=entry.get("default_dtype", "bf16"),
            usd_per_gpu_hour=entry.get("usd_per_gpu_hour"),
            price_source=entry.get("price_source"),
            aliases=tuple(str(a) for a in entry.get("aliases", ())),
        )
    return catalog


@functools.lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    table = {}
    for name, gpu in load_catalog().items():
        for alias in (name, *gpu.aliases):
            table[_key(alias)] = name
    return table


def get_gpu(name: str | Gpu, option: str = "--gpu") -> Gpu:
    """Look up a GPU by name or alias, ignoring case, spaces, dashes and underscores.

    ``"h100"`` is the H100 SXM, ``"a100"`` the A100 SXM 80GB, ``"4090"`` the RTX 4090.
    An unknown name raises :class:`UnknownName` naming ``option`` and the closest valid names.
    """
    if isinstance(name, Gpu):
        return name
    canonical = _lookup().get(_key(name))
    if canonical is None:
        raise UnknownName("GPU", str(name), load_catalog(), option)
    return load_catalog()[canonical]


def _check_mfu(mfu, option: str = "--mfu") -> np.ndarray:
    mfu_arr = np.asarray(mfu, dtype=float)
    if not np.all((mfu_arr > 0) & (mfu_arr <= 1)):
        raise UsageError(f"{option}: {mfu} must be in (0, 1]; typical values are 0.3 to 0.6")
    return mfu_arr


def _check_positive(value, option: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise UsageError(f"{option}: {value} must be a finite number greater than zero")
    return arr


def budget_flops(
    gpu: Gpu | str,
    *,
    gpu_hours=None,
    usd=None,
    usd_per_gpu_hour=None,
    mfu=DEFAULT_MFU,
    dtype: str | None = None,
) -> np.ndarray:
    """Training FLOPs bought by GPU-hours or dollars, eq. (1) of the module docstring.

    Parameters
    ----------
    gpu : Gpu or str
        The accelerator (a name is looked up with :func:`get_gpu`).
    gpu_hours : float or array, optional
        Total GPU-hours (GPUs x hours). Give exactly one of ``gpu_hours`` and ``usd``.
    usd : float or array, optional
        Budget in US dollars, converted at ``usd_per_gpu_hour`` or, without one, at the catalog's
        indicative price (an assumption the CLI marks as such); an error when there is neither.
    usd_per_gpu_hour : float, optional
        Price in USD per GPU-hour.
    mfu : float
        Model FLOP utilisation in (0, 1]; default 0.4.
    dtype : str, optional
        Which peak to use; default the GPU's training dtype (bf16).

    Returns
    -------
    ndarray
        Model FLOPs C = gpu_hours * 3600 * peak * mfu.
    """
    gpu = get_gpu(gpu)
    if (gpu_hours is None) == (usd is None):
        raise UsageError("give exactly one of --gpu-hours and --usd")
    if usd is not None:
        if usd_per_gpu_hour is None:  # the catalog's indicative price (marked assumed by callers)
            usd_per_gpu_hour = gpu.usd_per_gpu_hour
        if usd_per_gpu_hour is None:
            raise UsageError(
                f"--usd: the catalog has no price for {gpu.name}; add --usd-per-gpu-hour (USD per GPU-hour, e.g. 2.5)"
            )
        gpu_hours = _check_positive(usd, "--usd") / _check_positive(usd_per_gpu_hour, "--usd-per-gpu-hour")
    hours = _check_positive(gpu_hours, "--gpu-hours")
    return hours * SECONDS_PER_HOUR * gpu.peak_flops(dtype) * _check_mfu(mfu)


def training_time(
    flops,
    gpu: Gpu | str,
    gpus=1,
    mfu=DEFAULT_MFU,
    dtype: str | None = None,
    usd_per_gpu_hour=None,
) -> dict:
    """GPU-hours, wall clock and cost of ``flops`` model FLOPs, inverting eq. (1).

    Parameters
    ----------
    flops : float or array
        Model FLOPs (training: the plan's C; inference: 2·N·T, Kaplan et al. 2020 §2.1).
    gpu : Gpu or str
        The accelerator.
    gpus : int
        Number of GPUs running in parallel (perfect scaling is assumed; MFU absorbs the losses).
    mfu : float
        Model FLOP utilisation in (0, 1].
    dtype : str, optional
        Which peak to use; default the GPU's training dtype.
    usd_per_gpu_hour : float, optional
        Price; default the catalog's indicative price (then ``price_assumed`` is True), or no
        cost at all (``usd`` is None) where the catalog has none.

    Returns
    -------
    dict
        ``gpu_hours``, ``wall_clock_hours``, ``wall_clock_days``, ``usd`` (arrays, usd may be
        None), and the inputs used: ``gpu``, ``gpus``, ``mfu``, ``dtype``, ``peak_flops_per_s``,
        ``usd_per_gpu_hour``, ``price_assumed``.
    """
    gpu = get_gpu(gpu)
    flops = _check_positive(flops, "compute")
    gpus_arr = _check_positive(gpus, "--gpus")
    if not np.all(gpus_arr == np.round(gpus_arr)):
        raise UsageError(f"--gpus: {gpus} must be a whole number of GPUs")
    mfu_arr = _check_mfu(mfu)
    dtype = (dtype or gpu.default_dtype).lower()
    peak = gpu.peak_flops(dtype)
    gpu_hours = flops / (peak * mfu_arr * SECONDS_PER_HOUR)
    wall_hours = gpu_hours / gpus_arr
    price_assumed = usd_per_gpu_hour is None and gpu.usd_per_gpu_hour is not None
    price = usd_per_gpu_hour if usd_per_gpu_hour is not None else gpu.usd_per_gpu_hour
    usd = None
    if price is not None:
        usd = gpu_hours * _check_positive(price, "--usd-per-gpu-hour")
    return {
        "gpu": gpu.name,
        "gpus": gpus,
        "mfu": mfu,
        "dtype": dtype,
        "peak_flops_per_s": peak,
        "gpu_hours": gpu_hours,
        "wall_clock_hours": wall_hours,
        "wall_clock_days": wall_hours / 24.0,
        "usd_per_gpu_hour": price,
        "price_assumed": price_assumed,
        "usd": usd,
    }


def usd_per_flop(gpu: Gpu | str, mfu=DEFAULT_MFU, usd_per_gpu_hour=None, dtype: str | None = None):
    """Dollars per model FLOP, price / (3600 · peak · mfu): a FLOP's weight in a cost objective.

    Uses the catalog's indicative price when ``usd_per_gpu_hour`` is None; raises
    :class:`UsageError` naming ``--usd-per-gpu-hour`` when there is neither.
    """
    gpu = get_gpu(gpu)
    price = usd_per_gpu_hour if usd_per_gpu_hour is not None else gpu.usd_per_gpu_hour
    if price is None:
        raise UsageError(f"--usd-per-gpu-hour: the catalog has no price for {gpu.name}; give one")
    price = _check_positive(price, "--usd-per-gpu-hour")
    return price / (SECONDS_PER_HOUR * gpu.peak_flops(dtype) * _check_mfu(mfu))
