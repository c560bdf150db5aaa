"""The formula language (scalecalc/expr.py): whitelist, numpy evaluation, sympy view.

Reference values: docs/reference.md §10 (test vectors) and §4 (Llama 3), computed from the papers'
published constants; nothing here is a result copied from the code under test.
"""

from __future__ import annotations

import builtins
import math
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from scalecalc.errors import LawFileError, UsageError
from scalecalc.expr import MAX_DEPTH, MAX_LENGTH, Expr, parse

CHINCHILLA = "E + A / N**alpha + B / D**beta"
ROUNDED = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Hoffmann et al. 2022, eq. 10
# docs/reference.md §2.2: the TeX-source values, given as logarithms (e = ln E, a = ln A, b = ln B).
TEX = dict(
    E=math.exp(0.5267228),
    A=math.exp(6.0073404),
    B=math.exp(6.0179186),
    alpha=0.33917084,
    beta=0.2849083,
)
EPOCH = dict(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)  # Besiroglu et al. 2024
KAPLAN_15 = "((Nc/N)**(alphaN/alphaD) + Dc/D)**alphaD"  # Kaplan et al. 2020, eq. 1.5
KAPLAN_T2 = dict(alphaN=0.076, alphaD=0.103, Nc=6.4e13, Dc=1.8e13)  # Kaplan Table 2
KAPLAN_T5 = dict(alphaN=0.076, alphaD=0.095, Nc=8.8e13, Dc=5.4e13)  # Kaplan Table 5

log_uniform = st.floats(min_value=6.0, max_value=15.0).map(lambda x: 10.0**x)


# --- accepted formulas -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "constants, N, D, expected",
    [
        (ROUNDED, 70e9, 1.4e12, 1.9366),  # docs/reference.md §10: Chinchilla at (70B, 1.4T)
        (TEX, 70e9, 1.4e12, 1.9208),
        (EPOCH, 70e9, 1.4e12, 1.9739),
        (ROUNDED, 1e9, 20e9, 2.5800),
        (TEX, 1e9, 20e9, 2.5307),
        (EPOCH, 1e9, 20e9, 2.5301),
    ],
)
def test_chinchilla_loss_matches_reference_vectors(constants, N, D, expected):
    loss = parse(CHINCHILLA)
    assert loss.symbols == {"E", "A", "B", "alpha", "beta", "N", "D"}
    assert loss(N=N, D=D, **constants) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize("constants, expected", [(KAPLAN_T2, 2.4197), (KAPLAN_T5, 2.4838)])
def test_kaplan_eq_1_5_matches_reference_vectors(constants, expected):
    loss = parse(KAPLAN_15)
    assert loss.symbols == {"Nc", "Dc", "alphaN", "alphaD", "N", "D"}
    assert loss(N=1e9, D=1e10, **constants) == pytest.approx(expected, abs=5e-5)


def test_llama3_allocation_rule_reproduces_published_tokens():
    # Llama 3 §3.2.1: D*(C) = A C^alpha; A = 0.299, alpha = 0.5373 -> 16.58T tokens at 3.8e25.
    tokens = parse("A * C**alpha")
    assert tokens.symbols == {"A", "C", "alpha"}
    assert tokens(C=3.8e25, A=0.299, alpha=0.5373) == pytest.approx(1.658e13, rel=5e-4)


def test_kaplan_critical_batch_vectors():
    # Kaplan eq. 1.4 with B* = 2e8, alpha_B = 0.21 (docs/reference.md §10).
    rule = parse("Bstar / L**(1/alpha_B)")
    got = rule(L=np.array([2.0, 3.0, 4.0, 10.0]), Bstar=2e8, alpha_B=0.21)
    np.testing.assert_allclose(got, [7.37e6, 1.07e6, 2.72e5, 3.46e3], rtol=5e-3)


def test_every_whitelisted_function_evaluates_like_numpy():
    expr = parse("exp(x) + log(x) + sqrt(x) + abs(-x) + log10(x) + min(x, y, 3) + max(x, y) - +x")
    assert expr.symbols == {"x", "y"}  # function names are not symbols
    x, y = np.array([0.5, 2.0, 7.0]), np.array([1.0, 1.0, 9.0])
    expected = (
        np.exp(x) + np.log(x) + np.sqrt(x) + x + np.log10(x) + np.minimum(np.minimum(x, y), 3) + np.maximum(x, y) - x
    )
    np.testing.assert_allclose(expr(x=x, y=y), expected, rtol=1e-15)


def test_min_max_of_many_arguments():
    assert parse("min(a, b, c, d)")(a=4, b=2, c=3, d=5) == 2.0
    assert parse("max(a, b, c, d)")(a=4, b=2, c=3, d=5) == 5.0
    assert math.isnan(parse("min(a, b)")(a=float("nan"), b=1.0))  # nan propagates, not hides


def test_integer_literals_evaluate_as_floats():
    # Python ints would make 2**-1 an error in numpy and 10**400 an exact integer.
    assert parse("2**-1")() == 0.5
    assert parse("N**2")(N=np.array([3]))[0] == 9.0
    assert parse("10**400")() == math.inf


def test_yaml_numbers_are_accepted_as_formulas():
    assert parse(4e6)() == 4e6
    assert parse(7)(N=np.ones(2)).tolist() == [7.0, 7.0]


def test_text_is_stripped_and_multiline_allowed():
    expr = parse("  (E\n + A / N**alpha)  ")
    assert expr.text.startswith("(E")
    assert expr(E=1.0, A=2.0, N=4.0, alpha=0.5) == 2.0


# --- refusals --------------------------------------------------------------------------------

REFUSED = [
    ("().__class__", "attribute access '().__class__' is not allowed (column 1)"),
    ("N + x.y", "attribute access 'x.y' is not allowed (column 5)"),
    ("__import__('os')", "call to '__import__' is not allowed"),
    ("N[0]", "subscript 'N[0]' is not allowed"),
    ("(lambda: 1)()", "call of 'lambda: 1' (only named functions may be called)"),
    ("lambda x: x", "lambda 'lambda x: x' is not allowed"),
    ("[x for x in y]", "list comprehension"),
    ("(x for x in y)", "generator expression"),
    ("max(x for x in y)", "generator expression"),
    ("f'{N}'", "f-string"),
    ("min(a, b, key=c)", "keyword argument key= in 'min(a, b, key=c)' is not allowed (column 11)"),
    ("min(a, **b)", "argument unpacking **"),
    ("open('x')", "call to 'open' is not allowed"),
    ("eval('1')", "call to 'eval' is not allowed"),
    ("a if b else c", "conditional expression 'a if b else c'"),
    ("a < b", "comparison 'a < b'"),
    ("a and b", "boolean operator 'a and b'"),
    ("not a", "operator 'not'"),
    ("~a", "operator '~'"),
    ("N % 2", "operator '%'"),
    ("N // 2", "operator '//'"),
    ("N ^ 2", "operator '^' in 'N ^ 2' is not allowed (column 1); use ** for powers"),
    ("'abc'", "string constant \"'abc'\""),
    ("b'abc'", "string constant"),
    ("True", "constant True"),
    ("None", "constant None"),
    ("1j", "complex number '1j'"),
    ("1e999", "number '1e999' (not a finite float)"),
    ("(y := 2)", "assignment expression ':='"),
    ("min(*a)", "starred argument '*a' is not allowed (column 5)"),
    ("__class__", "name '__class__' (names may not start with '_')"),
    ("_private + 1", "name '_private' (names may not start with '_')"),
    ("\u03b1 * N", "name '\u03b1' (names use ASCII letters, digits and _)"),
    ("exp + 1", "function name 'exp' used as a value is not allowed (column 1); call it"),
    ("N.__class__.__bases__", "attribute access"),
    ("x.y(1)", "call of 'x.y' (only named functions may be called)"),
    ("(1, 2)", "tuple '(1, 2)'"),
    ("[N]", "list '[N]'"),
    ("{N: 1}", "dict"),
    ("N[1:2]", "subscript"),
    ("exp(1, 2)", "exp() takes exactly 1 argument, got 2"),
    ("log10()", "log10() takes exactly 1 argument, got 0"),
    ("max(N)", "max() takes at least 2 arguments, got 1"),
    ("N +", "syntax error"),
    ("N N", "syntax error"),
    ("", "formula is empty"),
    ("   ", "formula is empty"),
]


@pytest.mark.parametrize("text, reason", REFUSED, ids=[t or "empty" for t, _ in REFUSED])
def test_refused_with_where_and_reason(text, reason):
    with pytest.raises(LawFileError) as info:
        parse(text, where="my.yaml line 7 (loss)")
    message = str(info.value)
    assert message.startswith("my.yaml line 7 (loss): ")
    assert reason in message
    assert "\n" not in message  # the CLI prints it as one line


def test_construct_refusals_list_what_is_allowed():
    with pytest.raises(LawFileError, match="formulas may use numbers, \\+ - \\* / \\*\\*, names"):
        parse("N.real")


def test_law_file_error_is_a_usage_error():
    # Exit code 2 in the CLI (errors.py): a malformed input file.
    with pytest.raises(UsageError):
        parse("N.real")


def test_deep_nesting_is_refused():
    with pytest.raises(LawFileError, match=f"nested too deeply \\(more than {MAX_DEPTH} levels\\)"):
        parse("-" * 150 + "N")
    with pytest.raises(LawFileError, match="nested too deeply"):
        parse(" + ".join(["N"] * (MAX_DEPTH + 20)))  # a left-deep chain of additions
    with pytest.raises(LawFileError, match="too many nested parentheses"):
        parse("(" * 250 + "N" + ")" * 250)  # Python's own parser limit, reported the same way
    assert parse(" + ".join(["N"] * 50))(N=1.0) == 50.0


def test_long_text_is_refused_before_parsing():
    assert parse("N" + " " * (MAX_LENGTH - 1))(N=2.0) == 2.0
    too_long = f"is {MAX_LENGTH + 1} characters long; the limit is 2000"
    with pytest.raises(LawFileError, match=too_long):
        parse("N" + " " * MAX_LENGTH)


def test_pathological_inputs_never_escape_as_other_exceptions():
    hostile = ["-" * 1999 + "1", "~" * 1999 + "1", "N\x00", "not " * 490 + "1", "[" * 99 + "]" * 99]
    for text in hostile:
        with pytest.raises(LawFileError):
            parse(text)


def test_non_string_formula_is_refused():
    with pytest.raises(LawFileError, match="expected a formula \\(a string\\), got list"):
        parse(["N"], where="f.yaml (loss)")
    with pytest.raises(LawFileError, match="got bool"):
        parse(True)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="NDE()[]{}.,:*+-/%^'\"_ab1e9jx=<>!@~ fornilambdaexpmin", max_size=40))
def test_fuzz_only_law_file_errors_escape(text):
    # Whatever a user writes, parse returns an Expr or raises LawFileError; never anything else.
    try:
        expr = parse(text)
    except LawFileError:
        return
    assert isinstance(expr, Expr)
    assert all(not name.startswith("_") for name in expr.symbols)


def test_no_eval_or_exec_is_used(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must not be called on law-file text")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    loss = parse(CHINCHILLA)
    assert loss(N=70e9, D=1.4e12, **ROUNDED) == pytest.approx(1.9366, abs=5e-5)


# --- evaluation ------------------------------------------------------------------------------


def test_missing_names_are_named():
    loss = parse(CHINCHILLA, where="x.yaml line 3 (loss)")
    with pytest.raises(LawFileError, match=r"x.yaml line 3 \(loss\): no value for A, B in"):
        loss(N=1e9, D=1e10, E=1.69, alpha=0.34, beta=0.28)


def test_non_numeric_values():
    with pytest.raises(LawFileError, match="x.yaml: A = 'big' is not a number"):
        parse("A * N", where="x.yaml")(A="big", N=1.0)
    assert parse("A * N")(A=2, N=3, title="ignored, not a symbol") == 6.0


def test_broadcasting_over_arrays():
    loss = parse(CHINCHILLA)
    N = np.logspace(8, 11, 4)
    D = np.logspace(9, 13, 5)[:, None]
    grid = loss(N=N, D=D, **ROUNDED)
    assert grid.shape == (5, 4)
    assert grid[2, 1] == loss(N=N[1], D=D[2, 0], **ROUNDED)
    # A constant rule still gives one value per input row (shape of all inputs given).
    assert parse("4e6")(N=N).shape == (4,)
    assert isinstance(loss(N=1e9, D=1e10, **ROUNDED), float)


def test_division_by_zero_and_overflow_are_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse("1 / x")(x=0.0) == math.inf
        assert parse("1 / 0")() == math.inf
        assert parse("x ** 1000")(x=1e10) == math.inf
        assert math.isnan(parse("x ** 0.5")(x=-1.0))
        assert math.isnan(parse("log(x)")(x=-1.0))


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, max_value=30.0), st.floats(min_value=0.01, max_value=2.0))
def test_power_terms_accurate_up_to_1e30(log10_N, alpha):
    # A / N**alpha against 50-digit arithmetic (mpmath ships with sympy).
    import mpmath

    N = 10.0**log10_N
    got = parse("A / N**alpha")(A=406.4, N=N, alpha=alpha)
    with mpmath.workdps(50):
        exact = mpmath.mpf(406.4) / mpmath.power(mpmath.mpf(N), mpmath.mpf(alpha))
    assert got == pytest.approx(float(exact), rel=1e-14)


def test_expr_is_hashable_picklable_and_compares_by_text():
    a, b = parse(CHINCHILLA, where="one"), parse(CHINCHILLA, where="two")
    assert a == b and hash(a) == hash(b)
    assert a != parse("E + A / N**alpha")
    clone = pickle.loads(pickle.dumps(a))
    assert clone == a and clone.where == "one"
    assert clone(N=70e9, D=1.4e12, **ROUNDED) == a(N=70e9, D=1.4e12, **ROUNDED)
    with pytest.raises(AttributeError):
        a.text = "N"  # frozen
    assert str(a) == CHINCHILLA


# --- sympy view ------------------------------------------------------------------------------


def test_sympy_view_is_built_from_the_tree():
    N, D = sp.symbols("N D", positive=True)
    E, A, B, alpha, beta = sp.symbols("E A B alpha beta")
    got = parse(CHINCHILLA).sympy({"N": N, "D": D})
    assert sp.simplify(got - (E + A / N**alpha + B / D**beta)) == 0
    assert parse("log10(x)").sympy() == sp.log(sp.Symbol("x"), 10)
    assert parse("min(x, y, 2)").sympy() == sp.Min(sp.Symbol("x"), sp.Symbol("y"), 2)
    assert parse("abs(x) + max(x, 1)").sympy() == sp.Abs(sp.Symbol("x")) + sp.Max(sp.Symbol("x"), 1)
    assert parse("N**2 / 6").sympy() == sp.Symbol("N") ** 2 / 6  # integers stay exact


def test_sympy_numbers_substitute_as_floats():
    value = parse(CHINCHILLA).sympy({**ROUNDED, "N": 70e9, "D": 1.4e12})
    assert isinstance(value, sp.Float)
    assert float(value) == pytest.approx(1.9366, abs=5e-5)


def test_sympy_view_folds_numeric_powers_like_numpy():
    assert parse("2**-1").sympy() == sp.Rational(1, 2)  # small powers stay exact
    assert parse("8**(1/3)").sympy() == 2
    assert parse("(1/3)**1000000").sympy() == sp.Float(0.0)  # float64 underflow, like numpy
    assert parse("min(1/0, -1/0)").sympy() == -sp.oo  # numpy's inf, not sympy's zoo
    assert parse("N**(10**2)").sympy() == sp.Symbol("N") ** 100
    assert parse("N**(10**999)").sympy() == sp.Symbol("N") ** sp.oo  # numpy: 10.0**999 = inf


def test_sympy_view_of_hostile_constants_is_fast():
    # 9**9**9 has 369 million digits and 2**2**2**2**2**2 about 10**19728: computed exactly they
    # would hang sympy. Run in a subprocess so a regression fails instead of hanging the suite.
    code = (
        "from scalecalc.expr import parse; import sympy\n"
        "for t in ['9**9**9', '2**2**2**2**2**2', '(10**600)**(10**600)', '(2**0.5)**1e300']:\n"
        "    assert parse(t).sympy() == sympy.oo, t\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_formula_without_symbolic_form_is_a_law_file_error():
    assert math.isnan(parse("max(0/0, 1)")())
    expected = r"f.yaml \(loss\): 'max\(0/0, 1\)' has no symbolic form"
    with pytest.raises(LawFileError, match=expected):
        parse("max(0/0, 1)", where="f.yaml (loss)").sympy()


FORMULAS = [
    (CHINCHILLA, ROUNDED),
    (CHINCHILLA, EPOCH),
    (KAPLAN_15, KAPLAN_T2),
    (
        "E + exp(a - alpha*log(N)) + sqrt(D)/log10(D) - min(N, D)/max(N, D)",
        dict(E=1.7, a=6.0, alpha=0.3),
    ),
]


@pytest.mark.parametrize("text, constants", FORMULAS)
@settings(max_examples=60, deadline=None)
@given(N=log_uniform, D=log_uniform)
def test_numpy_and_sympy_agree(text, constants, N, D):
    # The sympy expression and the numpy evaluation agree to rtol 1e-12.
    expr = parse(text)
    numeric = expr(N=N, D=D, **constants)
    values = {**constants, "N": N, "D": D}
    exact = expr.sympy().evalf(30, subs={sp.Symbol(k): v for k, v in values.items()})
    assert numeric == pytest.approx(float(exact), rel=1e-12)


def test_import_does_not_pull_in_sympy():
    code = (
        "import sys, scalecalc.expr as e; "
        "x = e.parse('E + A / N**alpha')(E=1, A=2, N=3, alpha=0.5); "
        "print(sorted(m for m in ('sympy', 'scipy', 'mpmath') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
