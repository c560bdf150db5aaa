"""The formula language of law files: a whitelisted parse, a numpy evaluator and a sympy view.

Law files come from users, so their formulas are never passed to ``eval``, ``exec`` or
``compile``. :func:`parse` runs ``ast.parse(text, mode="eval")`` and walks the tree against an
explicit whitelist (docs/architecture.md):

* numbers (``int`` or ``float`` literals; no strings, booleans, complex numbers or ``None``);
* ``+ - * / **`` and unary ``-`` / ``+``;
* names of ASCII letters, digits and ``_`` that do not start with ``_`` (so no dunders);
* calls ``exp log sqrt abs log10`` (one argument) and ``min max`` (two or more), positional only.

Everything else (attribute access, subscripts, lambdas, comprehensions, conditional expressions,
comparisons, boolean operators, starred and keyword arguments, f-strings, ``:=``, calls to other
names or on anything but a plain name) is refused with :class:`~scalecalc.errors.LawFileError`
naming the construct and its column. The accepted tree is converted into a small immutable node
tree, which is compiled once into nested Python closures over numpy ufuncs (the numeric path) and
can be rebuilt node by node as a sympy expression (the symbolic view, ``scalecalc formula``).

This module imports only ``ast``, ``dataclasses`` and numpy: it is on the path of every
``scalecalc plan`` query, and sympy alone costs about half a second to import.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from scalecalc.errors import LawFileError

__all__ = ["Expr", "parse", "FUNCTIONS", "MAX_LENGTH", "MAX_DEPTH"]

from scalecalc.validate.limits import MAX_FORMULA_CHARS as MAX_LENGTH  # noqa: E402 (limits in one place)
from scalecalc.validate.limits import MAX_FORMULA_DEPTH as MAX_DEPTH  # noqa: E402

#: Whitelisted functions -> (numpy implementation, minimum arity, maximum arity or None).
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "exp": (np.exp, 1, 1),
    "log": (np.log, 1, 1),
    "sqrt": (np.sqrt, 1, 1),
    "abs": (np.abs, 1, 1),
    "log10": (np.log10, 1, 1),
    "min": (np.minimum, 2, None),
    "max": (np.maximum, 2, None),
}

_ALLOWED = "formulas may use numbers, + - * / **, names and exp log sqrt min max abs log10"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

_BINOPS: dict[type, tuple[str, Callable[..., Any]]] = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide),
    ast.Pow: ("**", np.power),
}
_OTHER_BINOPS = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}
_OTHER_UNARY = {ast.Not: "not", ast.Invert: "~"}
_CONSTRUCTS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.IfExp: "conditional expression",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.Starred: "starred expression",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.NamedExpr: "assignment expression ':='",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slice",
}


# --- the validated tree ---------------------------------------------------------------------
# Immutable, hashable nodes; the only shapes the evaluator and the sympy builder ever see.


class _Num(NamedTuple):
    value: int | float


class _Name(NamedTuple):
    id: str


class _Bin(NamedTuple):
    op: str  # one of + - * / **
    left: Any
    right: Any


class _Neg(NamedTuple):
    operand: Any


class _Call(NamedTuple):
    func: str
    args: tuple


class _Refused(Exception):
    """Internal: carries a refusal reason up to :func:`parse`, which adds ``where``."""


def _column(text: str, node: ast.AST) -> str:
    """Human (1-based, character) position of ``node``; ``col_offset`` counts UTF-8 bytes."""
    line = getattr(node, "lineno", 1)
    offset = getattr(node, "col_offset", 0)
    source_line = text.splitlines()[line - 1] if text.splitlines() else ""
    col = len(source_line.encode("utf-8")[:offset].decode("utf-8", errors="ignore")) + 1
    return f"line {line}, column {col}" if line > 1 else f"column {col}"


def _snippet(text: str, node: ast.AST) -> str:
    segment = ast.get_source_segment(text, node) or ast.unparse(node)
    segment = " ".join(segment.split())
    return segment if len(segment) <= 40 else segment[:37] + "..."


class _Validator:
    """Walks a Python ``ast`` against the whitelist and builds the validated node tree."""

    def __init__(self, text: str):
        self.text = text
        self.symbols: set[str] = set()

    def refuse(self, what: str, node: ast.AST, hint: str = "") -> _Refused:
        where = _column(self.text, node)
        hint = f"; {hint}" if hint else ""
        return _Refused(f"{what} is not allowed ({where}){hint}; {_ALLOWED}")

    def visit(self, node: ast.AST, depth: int = 0):
        if depth > MAX_DEPTH:
            raise _Refused(f"formula is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        if isinstance(node, ast.UnaryOp):
            return self.unaryop(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        kind = _CONSTRUCTS.get(type(node), f"construct {type(node).__name__}")
        raise self.refuse(f"{kind} {_snippet(self.text, node)!r}", node)

    def constant(self, node: ast.Constant) -> _Num:
        value = node.value
        # bool is a subclass of int, so test it first.
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise self.refuse(f"constant {value!r}", node)
        if isinstance(value, (str, bytes)):
            raise self.refuse(f"string constant {_snippet(self.text, node)!r}", node)
        if isinstance(value, complex):
            raise self.refuse(f"complex number {_snippet(self.text, node)!r}", node)
        if not isinstance(value, (int, float)):  # pragma: no cover - no other literal types
            raise self.refuse(f"constant {_snippet(self.text, node)!r}", node)
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float):
            raise self.refuse(
                f"number {_snippet(self.text, node)!r} (not a finite float)",
                node,
                "write numbers below about 1.8e308",
            )
        return _Num(value)

    def name(self, node: ast.Name) -> _Name:
        if node.id in FUNCTIONS:
            raise self.refuse(f"function name {node.id!r} used as a value", node, f"call it, e.g. {node.id}(x)")
        if node.id.startswith("_"):
            raise self.refuse(f"name {node.id!r} (names may not start with '_')", node)
        if not _NAME.match(node.id):
            raise self.refuse(f"name {node.id!r} (names use ASCII letters, digits and _)", node, "e.g. alpha")
        if not isinstance(node.ctx, ast.Load):  # pragma: no cover - eval mode only loads
            raise self.refuse(f"assignment to {node.id!r}", node)
        self.symbols.add(node.id)
        return _Name(node.id)

    def binop(self, node: ast.BinOp, depth: int) -> _Bin:
        op = _BINOPS.get(type(node.op))
        if op is None:
            symbol = _OTHER_BINOPS.get(type(node.op), type(node.op).__name__)
            hint = "use ** for powers" if symbol == "^" else ""
            raise self.refuse(f"operator {symbol!r} in {_snippet(self.text, node)!r}", node, hint)
        return _Bin(op[0], self.visit(node.left, depth + 1), self.visit(node.right, depth + 1))

    def unaryop(self, node: ast.UnaryOp, depth: int):
        if isinstance(node.op, ast.USub):
            return _Neg(self.visit(node.operand, depth + 1))
        if isinstance(node.op, ast.UAdd):
            return self.visit(node.operand, depth + 1)
        symbol = _OTHER_UNARY.get(type(node.op), type(node.op).__name__)
        raise self.refuse(f"operator {symbol!r} in {_snippet(self.text, node)!r}", node)

    def call(self, node: ast.Call, depth: int) -> _Call:
        if not isinstance(node.func, ast.Name):
            raise self.refuse(
                f"call of {_snippet(self.text, node.func)!r} (only named functions may be called)",
                node,
            )
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.refuse(f"call to {name!r}", node, f"functions: {', '.join(FUNCTIONS)}")
        if node.keywords:
            keyword = node.keywords[0]
            label = f"keyword argument {keyword.arg}=" if keyword.arg else "argument unpacking **"
            raise self.refuse(f"{label} in {_snippet(self.text, node)!r}", keyword)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.refuse(f"starred argument {_snippet(self.text, arg)!r}", arg)
        # Arguments first: a refused construct inside says more than a wrong count.
        args = tuple(self.visit(arg, depth + 1) for arg in node.args)
        _, low, high = FUNCTIONS[name]
        if len(args) < low or (high is not None and len(args) > high):
            wanted = f"exactly {low}" if low == high else f"at least {low}"
            raise _Refused(
                f"{name}() takes {wanted} argument{'s' if low > 1 else ''}, got {len(args)} "
                f"({_column(self.text, node)})"
            )
        return _Call(name, args)


# --- compilation to numpy closures -----------------------------------------------------------


def _compile(node) -> Callable[[dict], Any]:
    """Turn a validated node into a closure ``env -> value`` (numpy ufuncs, no eval)."""
    if isinstance(node, _Num):
        # np.float64, not a Python float, so 1/0 gives inf instead of ZeroDivisionError.
        value = np.float64(node.value)
        return lambda env: value
    if isinstance(node, _Name):
        key = node.id
        return lambda env: env[key]
    if isinstance(node, _Neg):
        inner = _compile(node.operand)
        return lambda env: np.negative(inner(env))
    if isinstance(node, _Bin):
        ufunc = {op: fn for op, fn in _BINOPS.values()}[node.op]
        left, right = _compile(node.left), _compile(node.right)
        return lambda env: ufunc(left(env), right(env))
    if isinstance(node, _Call):
        fn = FUNCTIONS[node.func][0]
        args = tuple(_compile(arg) for arg in node.args)
        if len(args) == 1:
            (only,) = args
            return lambda env: fn(only(env))
        # min/max of several arguments: fold the binary ufunc (nan propagates, like np.minimum).
        return lambda env: functools.reduce(fn, (arg(env) for arg in args))
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover - the validator forbids it


# --- the sympy view --------------------------------------------------------------------------


def _as_float(number) -> float:
    try:
        return float(number)
    except OverflowError:  # an exact integer beyond the float range
        return math.copysign(math.inf, number)


def _float_fold(sp, ufunc, left, right):
    """Combine two sympy numbers the way the numpy evaluator does (float64, inf/nan)."""
    with np.errstate(all="ignore"):
        value = float(ufunc(np.float64(_as_float(left)), np.float64(_as_float(right))))
    if math.isnan(value):
        return sp.nan
    if math.isinf(value):
        return sp.oo if value > 0 else -sp.oo
    return sp.Float(value)


def _sympy_pow(sp, base, exponent):
    """``base**exponent`` that never computes a huge exact number (``9**9**9``).

    Small exact powers stay exact (``2**-1`` is 1/2); any other power of two numbers is folded in
    float64 like the numpy evaluator (``9**9**9`` -> oo), so no arbitrary-precision work is done.
    """
    if not (base.is_Number and exponent.is_Number):
        return sp.Pow(base, exponent)
    if base.is_Rational and exponent.is_Rational:
        bits = max(abs(base.p).bit_length(), abs(base.q).bit_length())
        if abs(exponent) * bits <= 1000 and exponent.q <= 64:  # within ~1e300: cheap and exact
            return sp.Pow(base, exponent)
    return _float_fold(sp, np.power, base, exponent)


def _to_sympy(sp, node, symbols: dict):
    if isinstance(node, _Num):
        return sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(node.value)
    if isinstance(node, _Name):
        return symbols[node.id]
    if isinstance(node, _Neg):
        return -_to_sympy(sp, node.operand, symbols)
    if isinstance(node, _Bin):
        left = _to_sympy(sp, node.left, symbols)
        right = _to_sympy(sp, node.right, symbols)
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return left * right
        if node.op == "/":
            if left.is_Number and right.is_Number and right == 0:
                return _float_fold(sp, np.true_divide, left, right)  # inf/nan, not zoo
            return left / right
        return _sympy_pow(sp, left, right)
    if isinstance(node, _Call):
        args = [_to_sympy(sp, arg, symbols) for arg in node.args]
        if node.func == "min":
            return sp.Min(*args)
        if node.func == "max":
            return sp.Max(*args)
        if node.func == "log10":
            return sp.log(args[0], 10)
        return {"exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs}[node.func](args[0])
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover


# --- public API ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """A parsed, validated formula from a law file.

    Attributes
    ----------
    text : str
        The formula as written.
    symbols : frozenset of str
        Free names (the law's constants and variables such as N, D, C); function names excluded.
    where : str
        The location used in error messages (file, line and key), as given to :func:`parse`.

    Call it with every symbol as a keyword (``loss(N=7e10, D=1.4e12, E=1.69, ...)``) to evaluate
    with numpy; ``.sympy()`` gives the symbolic view. Build one with :func:`parse`.
    """

    text: str
    symbols: frozenset[str]
    where: str = field(default="formula", compare=False)
    _tree: Any = field(default=None, repr=False, compare=False)
    _fn: Callable[[dict], Any] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.text

    def __reduce__(self):
        # The compiled closures do not pickle; re-parsing the text rebuilds them (multiprocessing).
        return (parse, (self.text, self.where))

    def __call__(self, **env: Any) -> Any:
        """Evaluate with numpy, broadcasting over array inputs.

        Parameters
        ----------
        **env
            A value (scalar or array-like) for every name in :attr:`symbols`; extra names are
            ignored. Values are converted to float64.

        Returns
        -------
        float or numpy.ndarray
            A float when every input is a scalar, otherwise an array with the broadcast shape of
            all the inputs given (so a constant rule still returns one value per budget).
            Division by zero, overflow and invalid powers give inf/nan silently; callers check.

        Raises
        ------
        LawFileError
            When a name in the formula has no value in ``env``.
        """
        missing = sorted(self.symbols - env.keys())
        if missing:
            raise LawFileError(
                f"{self.where}: no value for {', '.join(missing)} in {self.text!r}; define it under constants"
            )
        values = {}
        for key, value in env.items():
            try:
                values[key] = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                if key in self.symbols:
                    raise LawFileError(f"{self.where}: {key} = {value!r} is not a number; give a number") from None
                # Unused non-numeric extras (a law's metadata) are ignored.
        with np.errstate(all="ignore"):
            result = np.asarray(self._fn(values), dtype=float)  # type: ignore[misc, type-var]
        shape = np.broadcast_shapes(result.shape, *(value.shape for value in values.values()))
        if shape != result.shape:
            result = np.broadcast_to(result, shape).copy()
        return float(result) if result.ndim == 0 else result

    def sympy(self, symbols: dict | None = None):
        """The formula as a sympy expression, built node by node from the validated tree.

        Parameters
        ----------
        symbols : dict, optional
            Name -> sympy object (e.g. ``sympy.Symbol("N", positive=True)``) or number, which is
            substituted as a ``sympy.Float``. Names not given become plain ``sympy.Symbol``.

        Returns
        -------
        sympy.Expr
            ``min``/``max``/``abs`` map to ``Min``/``Max``/``Abs``, ``log10(x)`` to ``log(x, 10)``;
            integer literals stay exact, float literals become ``Float``. The text is never
            passed to ``sympify``.
        """
        import sympy as sp  # lazy: keeps `scalecalc plan` free of the sympy import

        table = {}
        for name in self.symbols:
            value = (symbols or {}).get(name)
            if value is None:
                table[name] = sp.Symbol(name)
            elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                table[name] = sp.Float(float(value))
            else:
                table[name] = value
        try:
            return _to_sympy(sp, self._tree, table)
        except (ValueError, TypeError, ArithmeticError) as exc:  # e.g. Min of incomparable args
            raise LawFileError(f"{self.where}: {self.text!r} has no symbolic form ({exc}); check the formula") from None


def parse(text: str, where: str = "formula") -> Expr:
    """Parse a law-file formula against the whitelist.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"E + A / N**alpha + B / D**beta"`` (Hoffmann et al. 2022, eq. 2).
        A bare int or float (a YAML number) is accepted as its decimal text.
    where : str
        Prefix for error messages: the file, line and key, e.g. ``"my.yaml line 7 (loss)"``.

    Returns
    -------
    Expr

    Raises
    ------
    LawFileError
        ``f"{where}: {reason}"`` for syntax errors, constructs outside the whitelist (named, with
        their column), text over :data:`MAX_LENGTH` characters or nesting over :data:`MAX_DEPTH`.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(text)
    if not isinstance(text, str):
        raise LawFileError(
            f"{where}: expected a formula (a string), got {type(text).__name__}; write e.g. E + A / N**alpha"
        )
    if len(text) > MAX_LENGTH:
        raise LawFileError(f"{where}: formula is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise LawFileError(f"{where}: formula is empty; write e.g. E + A / N**alpha")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        line = f"line {exc.lineno}, " if exc.lineno and exc.lineno > 1 else ""
        position = f" ({line}column {exc.offset})" if exc.offset else ""
        raise LawFileError(f"{where}: syntax error{position}: {exc.msg}; {_ALLOWED}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise LawFileError(f"{where}: formula cannot be parsed ({type(exc).__name__}: {exc}); simplify it") from None
    validator = _Validator(text.strip())
    try:
        root = validator.visit(tree.body)
    except _Refused as exc:
        raise LawFileError(f"{where}: {exc}") from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops the walk long before this
        raise LawFileError(f"{where}: formula is nested too deeply") from None
    return Expr(
        text=text.strip(),
        symbols=frozenset(validator.symbols),
        where=where,
        _tree=root,
        _fn=_compile(root),
    )
