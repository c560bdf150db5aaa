"""``calibrate design``: which small runs would pin a scaling law down, before spending on them.

Library use::

    from scalecalc.laws import load_law
    from scalecalc.calibration.design import Prior, design, write_recipe
    prior = Prior.from_law(load_law("besiroglu2024"))
    result = design(prior, target_flops=1e23, cost_flops=5e20)
    result.best.interval["N"]             # (low, median, high) of N* at the target
    write_recipe(result, "design.yaml")   # `scalecalc calibrate run design.yaml --out runs/d`

``prior.py`` holds the Chinchilla form and its optimum, ``simulate.py`` the simulation and the
vectorised fit (the ``calibrate fit`` engine), ``search.py`` the candidates, the halving search
and the trade-off, ``recipe.py`` the recipe writer.
"""

from .prior import Prior, compute_for_params, optimum_from_theta
from .recipe import recipe_dict, write_recipe
from .search import Design, SweepShape, design, shapes, work
from .simulate import SEED_NOISE, Outcomes, simulate

__all__ = [
    "Prior",
    "compute_for_params",
    "optimum_from_theta",
    "Design",
    "SweepShape",
    "design",
    "shapes",
    "work",
    "simulate",
    "Outcomes",
    "SEED_NOISE",
    "recipe_dict",
    "write_recipe",
]
