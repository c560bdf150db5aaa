"""scalecalc: compute-optimal LLM training planner.

Library use::

    from scalecalc.laws import load_law
    from scalecalc.planner import plan, Query
    result = plan(Query(compute=[1e24]), load_law("besiroglu2024"))
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
