"""Symbolic view of a law for ``scalecalc formula``: the compute-optimal allocation in closed form.

For a loss L(N, D) and the budget constraint C = k·N·D (k = 6 for the 6ND convention), the
optimum along the constraint solves dL(N, C/(kN))/dN = 0. For the Chinchilla form
L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2) this gives eq. 4:

    N_opt(C) = G·(C/k)^a,   D_opt(C) = G^-1·(C/k)^b,
    G = (αA/(βB))^(1/(α+β)),   a = β/(α+β),   b = α/(α+β).

The stationarity condition of such sums of power laws is "monomial = monomial" in N, which is
linear in ln N; :func:`derive_optimum` solves it that way (exact and fast), and falls back to
``sympy.solve`` for other forms. The numeric planner never imports this module: the closed form
is the symbolic view and the test oracle the planner is checked against.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.pretty_symbology import pretty_use_unicode
from sympy.printing.pretty.stringpict import prettyForm

from scalecalc.expr import Expr

__all__ = [
    "Optimum",
    "FormulaView",
    "derive_optimum",
    "closed_form_params",
    "closed_form_tokens",
    "render",
]

_SIGNIFICANT = 6  # digits shown for substituted constants


@dataclass(frozen=True)
class FormulaView:
    """Printable equations of a law and its optimum (one flavour: unicode pretty or LaTeX).

    Each field is a whole equation (``L(N, D) = ...``, ``C = 6⋅N⋅D``, ``N_opt = ...``);
    ``*_numeric`` have the law's constants substituted (6 significant digits) and are ``None``
    when no constants were given. ``a``/``b`` are the exponents of N_opt ∝ C^a, D_opt ∝ C^b,
    ``None`` when the optimum is not a power law in C.
    """

    law: str
    constraint: str
    params: str
    tokens: str
    a: str | None = None
    b: str | None = None
    law_numeric: str | None = None
    params_numeric: str | None = None
    tokens_numeric: str | None = None
    a_numeric: str | None = None
    b_numeric: str | None = None


@dataclass(frozen=True)
class Optimum:
    """The compute-optimal allocation of a law under C = k·N·D, as sympy expressions.

    Attributes
    ----------
    loss : sympy.Expr
        L(N, D) over positive symbols.
    params, tokens : sympy.Expr
        N_opt(C) and D_opt(C) = C / (k·N_opt), in the budget symbol :attr:`C` (FLOPs) and the
        law's constants.
    loss_at_optimum : sympy.Expr or None
        L(N_opt(C), D_opt(C)), unsimplified.
    C : sympy.Symbol
        The compute budget (FLOPs).
    k : sympy.Expr
        FLOPs per parameter per token (6 for the 6ND convention), a number or a symbol.
    G, a, b : sympy.Expr or None
        The power-law form N_opt = G·(C/k)^a, D_opt = G^-1·(C/k)^b (Hoffmann et al. 2022, eq. 4),
        when the optimum has it; ``None`` otherwise.
    symbols : dict
        Name -> sympy symbol of the law (all positive).
    """

    loss: sp.Expr
    params: sp.Expr
    tokens: sp.Expr
    loss_at_optimum: sp.Expr | None
    C: sp.Symbol
    k: sp.Expr
    G: sp.Expr | None = None
    a: sp.Expr | None = None
    b: sp.Expr | None = None
    symbols: dict = field(default_factory=dict, compare=False, repr=False)

    def _substitution(self, constants: dict) -> dict:
        table = {}
        for name, value in constants.items():
            symbol = self.symbols.get(name)
            if symbol is None and isinstance(self.k, sp.Symbol) and self.k.name == name:
                symbol = self.k
            if symbol is not None:
                table[symbol] = sp.Float(float(value))
        return table

    def numeric(self, constants: dict) -> Optimum:
        """The same optimum with the constants (name -> number) substituted as sympy Floats."""
        table = self._substitution(constants)

        def sub(value):
            return None if value is None else value.subs(table)

        return replace(
            self,
            loss=sub(self.loss),
            params=sub(self.params),
            tokens=sub(self.tokens),
            loss_at_optimum=sub(self.loss_at_optimum),
            k=sub(self.k),
            G=sub(self.G),
            a=sub(self.a),
            b=sub(self.b),
        )

    def exponent_a(self, constants: dict, C: float | None = None) -> float:
        """d ln N_opt / d ln C with the constants substituted (the paper's a).

        ``C`` is needed only when the optimum is not a pure power law (the elasticity then
        depends on the budget).
        """
        table = self._substitution(constants)
        if self.a is not None:
            value = self.a.subs(table)
        else:
            value = (sp.diff(self.params, self.C) * self.C / self.params).subs(table)
            if value.has(self.C):
                if C is None:
                    raise ValueError("the exponent depends on C here; pass C (FLOPs)")
                value = value.subs(self.C, sp.Float(float(C)))
        return float(value)

    def pretty(self, constants: dict | None = None) -> FormulaView:
        """Unicode (multi-line) equations; numbers substituted too when ``constants`` is given."""
        return self._view(_pretty, constants)

    def latex(self, constants: dict | None = None) -> FormulaView:
        """LaTeX equations; numbers substituted too when ``constants`` is given."""
        return self._view(_latex, constants)

    # -- rendering helpers --------------------------------------------------------------------

    def _equations(self, G, a, b, k, params, tokens):
        """(N_opt = ..., D_opt = ...) keeping the paper's G·(C/k)^a shape unevaluated."""
        n_opt, d_opt = sp.Symbol("N_opt"), sp.Symbol("D_opt")
        if G is None:
            return sp.Eq(n_opt, params, evaluate=False), sp.Eq(d_opt, tokens, evaluate=False)
        ratio = sp.UnevaluatedExpr(sp.Mul(self.C, sp.Pow(_shown(k), -1, evaluate=False), evaluate=False))
        return (
            sp.Eq(n_opt, sp.Mul(G, ratio**a, evaluate=False), evaluate=False),
            sp.Eq(d_opt, sp.Mul(ratio**b, sp.Pow(G, -1), evaluate=False), evaluate=False),
        )

    def _view(self, show, constants) -> FormulaView:
        N, D = self.symbols["N"], self.symbols["D"]
        law = sp.Eq(sp.Function("L")(N, D), self.loss, evaluate=False)
        constraint = sp.Eq(self.C, sp.Mul(_shown(self.k), N, D, evaluate=False), evaluate=False)
        params, tokens = self._equations(self.G, self.a, self.b, self.k, self.params, self.tokens)
        view = FormulaView(
            law=show(law),
            constraint=show(constraint),
            params=show(params),
            tokens=show(tokens),
            a=None if self.a is None else show(sp.Eq(sp.Symbol("a"), self.a, evaluate=False)),
            b=None if self.b is None else show(sp.Eq(sp.Symbol("b"), self.b, evaluate=False)),
        )
        if not constants:
            return view
        num = self.numeric(constants)
        params, tokens = self._equations(num.G, num.a, num.b, num.k, num.params, num.tokens)
        law = sp.Eq(sp.Function("L")(N, D), num.loss, evaluate=False)
        a = None if num.a is None else sp.Eq(sp.Symbol("a"), num.a, evaluate=False)
        b = None if num.b is None else sp.Eq(sp.Symbol("b"), num.b, evaluate=False)
        return replace(
            view,
            law_numeric=show(law),
            params_numeric=show(params),
            tokens_numeric=show(tokens),
            a_numeric=None if a is None else show(a),
            b_numeric=None if b is None else show(b),
        )


def _shown(k):
    """k for display: a float k (5.711) as an opaque atom, so C/k is not folded to 0.1751·C."""
    if isinstance(k, sp.Float):
        return sp.Symbol(f"{float(k):.{_SIGNIFICANT}g}")
    return k


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _split_number(value: float) -> tuple[str, str | None]:
    """(mantissa, exponent) of a float shown to 6 significant digits; no exponent in
    [1e-4, 1e5), so 406.4 stays 406.4 and 1.8e13 becomes 1.8 and 13."""
    if value == 0 or not math.isfinite(value) or 1e-4 <= abs(value) < 1e5:
        return f"{value:.{_SIGNIFICANT}g}", None
    mantissa, exponent = f"{value:.{_SIGNIFICANT - 1}e}".split("e")
    return mantissa.rstrip("0").rstrip("."), str(int(exponent))


class _PrettyPrinter(PrettyPrinter):
    """sympy's unicode printer with floats as 406.4 or 1.8·10¹³ (not 18000000000000.0)."""

    def _print_Float(self, e):
        mantissa, exponent = _split_number(float(e))
        if exponent is None:
            return prettyForm(mantissa)
        # MUL binding: parenthesised as the base of a power, like a product.
        text = f"{mantissa}·10{exponent.translate(_SUPERSCRIPT)}"
        return prettyForm(text, binding=prettyForm.MUL)


class _LatexPrinter(LatexPrinter):
    """sympy's LaTeX printer with floats as 406.4 or 1.8 \\cdot 10^{13}."""

    def _print_Float(self, e):
        mantissa, exponent = _split_number(float(e))
        return mantissa if exponent is None else rf"{mantissa} \cdot 10^{{{exponent}}}"

    def parenthesize(self, item, level, is_neg=False, strict=False):
        if isinstance(item, sp.Float) and _split_number(float(item))[1] is not None:
            if level >= PRECEDENCE["Mul"]:
                return rf"\left({self._print(item)}\right)"
        return super().parenthesize(item, level, is_neg, strict)


class _Text(sp.Symbol):
    """A name printed as written (``learning_rate``, not learning with subscript rate)."""

    def _pretty(self, printer):
        return prettyForm(self.name)

    def _latex(self, printer):
        return r"\mathrm{" + self.name.replace("_", r"\_") + "}"


def _pretty(expression) -> str:
    # As sympy.pretty does: the unicode flag is global state, so set it and restore it.
    previous = pretty_use_unicode(True)
    try:
        return _PrettyPrinter({"use_unicode": True, "order": "none"}).doprint(expression)
    finally:
        pretty_use_unicode(previous)


def _latex(expression) -> str:
    return _LatexPrinter({"order": "none"}).doprint(expression)


def _lhs(name: str):
    """The left-hand side: ``N_opt`` prints with a subscript, ``learning_rate`` as written."""
    if re.fullmatch(r"[A-Za-z]_[A-Za-z0-9]+|[A-Za-z][A-Za-z0-9]*", name):
        return sp.Symbol(name)
    return _Text(name)


def _budget_factor(k, symbols: dict):
    if isinstance(k, str):
        return symbols.get(k) or sp.Symbol(k, positive=True)
    k = float(k)
    if not k > 0:
        raise ValueError(f"k must be positive FLOPs per parameter per token, got {k}")
    return sp.Integer(int(k)) if k.is_integer() else sp.Float(k)


def _log_linear_root(factor, N):
    """Solve ``factor = 0`` for N > 0 when ``factor`` is a sum of two monomials in N.

    Then t1 = -t2 with both sides positive, and ln t1 = ln(-t2) is linear in ln N.
    Returns None when the factor does not have that shape.
    """
    terms = sp.Add.make_args(sp.expand(factor, force=True))
    if len(terms) != 2:
        return None
    t1, t2 = terms
    if t1.is_negative:
        t1, t2 = -t1, -t2
    if not (t1.is_positive and t2.is_negative):
        return None  # both terms of one sign: no positive root
    u = sp.Dummy("u")
    equation = sp.expand_log(sp.log(t1), force=True) - sp.expand_log(sp.log(-t2), force=True)
    equation = sp.expand(equation.subs(sp.log(N), u))
    if equation.has(N):
        return None
    slope = sp.diff(equation, u)
    if slope.has(u) or slope == 0:
        return None
    return sp.exp(-equation.subs(u, 0) / slope)


def _stationary_point(slope, N):
    """The positive root of dL/dN along the budget, or None when sympy has no closed form."""
    factors = [f for f in sp.Mul.make_args(sp.factor_terms(slope)) if f.has(N) and not (f.is_positive or f.is_negative)]
    roots = []
    for factor in factors:
        root = _log_linear_root(factor, N)
        if root is None:
            try:
                candidates = sp.solve(factor, N)
            except (NotImplementedError, ValueError, TypeError):
                continue
            candidates = [r for r in candidates if r.is_positive is not False and r.is_real is not False]
            if len(candidates) != 1:
                continue
            root = candidates[0]
        roots.append(root)
    return roots[0] if len(roots) == 1 else None


def _exp_of_log(value):
    """exp(value) written as X**p when value = ln(X)·p (so G reads (αA/(βB))^(1/(α+β)))."""
    # cancel() sees (α+β) and (-α-β) as the same factor, which together() does not.
    numerator, denominator = sp.fraction(sp.cancel(sp.expand(sp.expand_log(value, force=True))))
    numerator = sp.logcombine(numerator, force=True)
    if isinstance(numerator, sp.log):
        return sp.powsimp(numerator.args[0] ** (1 / denominator))
    return sp.simplify(sp.exp(value))


def _power_law_form(n_opt, C, k):
    """(G, a) with n_opt = G·(C/k)^a, or (None, None) when N_opt is not a power of C."""
    lc = sp.Dummy("lc")
    log_n = sp.expand(sp.expand_log(sp.log(n_opt), force=True).subs(sp.log(C), lc))
    if log_n.has(C):
        return None, None
    slope = sp.diff(log_n, lc)
    if slope.has(lc) or slope == 0:
        return None, None  # ln N_opt is not linear in ln C
    # ln N_opt = a·ln C + r, so N_opt = exp(r + a·ln k)·(C/k)^a.
    a = sp.simplify(slope)
    return _exp_of_log(log_n.subs(lc, 0) + a * sp.log(k)), a


@functools.lru_cache(maxsize=64)
def derive_optimum(loss: Expr, k: float | str = 6) -> Optimum | None:
    """Minimise L(N, D) subject to C = k·N·D in closed form.

    Parameters
    ----------
    loss : Expr
        L(N, D) in nats/token; must use both N and D and not C.
    k : float or str
        FLOPs per parameter per token (6 for the 6ND convention, Kaplan et al. 2020 eq. 2.2;
        5.711 for Llama 3's back-solved convention), or the name of a constant.

    Returns
    -------
    Optimum or None
        N_opt(C) and D_opt(C) = C/(k N_opt) (Hoffmann et al. 2022, eq. 4 for the Chinchilla
        form), or None when the loss lacks N or D or sympy finds no unique positive stationary
        point. The stationary point is returned as the optimum without a second-order check;
        for sums of decreasing power laws in N and D it is the unique minimum.
    """
    if not {"N", "D"} <= loss.symbols or "C" in loss.symbols:
        return None
    symbols = {name: sp.Symbol(name, positive=True) for name in loss.symbols}
    N, D, C = symbols["N"], symbols["D"], sp.Symbol("C", positive=True)
    k = _budget_factor(k, symbols)
    law = loss.sympy(symbols)
    slope = sp.diff(law.subs(D, C / (k * N)), N)
    n_opt = _stationary_point(slope, N)
    if n_opt is None:
        return None
    G, a = _power_law_form(n_opt, C, k)
    if G is not None:
        params = G * (C / k) ** a
        b = sp.simplify(1 - a)
        tokens = (C / k) ** b / G
    else:
        params, b = n_opt, None
        tokens = C / (k * n_opt)
    return Optimum(
        loss=law,
        params=params,
        tokens=tokens,
        loss_at_optimum=law.subs({N: params, D: tokens}),
        C=C,
        k=k,
        G=G,
        a=a,
        b=b,
        symbols=symbols,
    )


def _closed_form(loss: Expr, constants: dict, k, C, which: str) -> np.ndarray:
    optimum = derive_optimum(loss, k)
    if optimum is None:
        raise ValueError(f"no closed-form optimum for {loss.text!r}")
    numeric = optimum.numeric(constants)
    expression = getattr(numeric, which)
    if expression.free_symbols - {numeric.C}:
        missing = sorted(str(s) for s in expression.free_symbols - {numeric.C})
        raise ValueError(f"constants missing for the closed form: {', '.join(missing)}")
    return np.asarray(sp.lambdify([numeric.C], expression, "numpy")(np.asarray(C, dtype=float)))


def closed_form_params(loss: Expr, constants: dict, k, C: np.ndarray) -> np.ndarray:
    """N_opt(C) from the symbolic derivation, evaluated with numpy (the test oracle)."""
    return _closed_form(loss, constants, k, C, "params")


def closed_form_tokens(loss: Expr, constants: dict, k, C: np.ndarray) -> np.ndarray:
    """D_opt(C) = C / (k·N_opt(C)) from the symbolic derivation, evaluated with numpy."""
    return _closed_form(loss, constants, k, C, "tokens")


def render(expr: Expr, latex: bool = False, constants: dict | None = None, lhs: str | None = None) -> str:
    """One formula of a law file (loss, params, tokens, a rule) as unicode pretty text or LaTeX.

    ``constants`` (name -> number, shown to 6 significant digits) are substituted when given;
    ``lhs`` (e.g. ``"N_opt"``) makes it an equation.
    """
    table = {name: sp.Symbol(name, positive=True) for name in expr.symbols}
    table.update({n: float(v) for n, v in (constants or {}).items() if n in expr.symbols})
    value = expr.sympy(table)
    if lhs:
        value = sp.Eq(_lhs(lhs), value, evaluate=False)
    return _latex(value) if latex else _pretty(value)
