"""scalecalc: compute-optimal LLM training planner.

Library use: :func:`scalecalc.planner.plan` returns what ``scalecalc plan`` prints, as rows.

>>> from scalecalc.laws import load_law
>>> from scalecalc.planner import Query, plan
>>> row = plan(load_law("besiroglu2024"), Query("compute", [1e24])).rows()[0]
>>> print(f"N* = {row['params']:.3g}, D* = {row['tokens']:.3g}, loss = {row['loss']:.3f}")
N* = 9.59e+10, D* = 1.74e+12, loss = 1.960
>>> print(row["shape"]["n_layer"], row["shape"]["d_model"], row["hyperparameters"]["rule"])
79 10112 porian2024
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
