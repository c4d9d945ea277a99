"""What every rule kind shares: the evaluation context, the Params base, rule instances, filters.

A rule kind is a class registered in :data:`RULES` under the ``kind`` name used in YAML. It has
``finding_kind`` (a :data:`costguard.model.KINDS` value), a frozen pydantic ``Params`` model for
its own keys, a docstring with a complete YAML example, and a pure ``evaluate(rule, ctx)``.
"""

from __future__ import annotations

import inspect
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from costguard.catalog import Catalog, bundled
from costguard.rollup import ROLLUP_KEYS
from costguard.model import Finding, NativeBudget
from costguard.owners import OwnersConfig
from costguard.registry import Registry

if TYPE_CHECKING:
    import polars as pl

#: String dimensions of the daily cost rollup: what ``filter:`` and ``group_by:`` may name.
DIMENSIONS: tuple[str, ...] = ("x_Source", *(k for k in ROLLUP_KEYS if k not in ("x_ChargeDate", "x_Tags")))
TAG_PREFIX = "tag:"
DATE = "x_ChargeDate"
TAGS = "x_Tags"

Metric = Literal["BilledCost", "EffectiveCost", "ListCost"]
Severity = Literal["info", "warning", "critical"]
FilterSpec = Mapping[str, "str | list[str]"]

MONEY_PLACES = Decimal("1e-10")  # the lake's scale: pl.Decimal(38, 10)
RATIO_PLACES = Decimal("1e-6")


@dataclass(frozen=True)
class RuleContext:
    """Inputs of one evaluation. Evaluation happens at the end of ``as_of``: days <= as_of count.

    ``inventory`` has ``inventory.INVENTORY_SCHEMA`` (plus ``x_Source`` when read from the lake);
    ``catalog`` prices resources the lake has no cost for yet and lists the types they could be
    resized to (the bundled catalogue unless the config names catalogue files)."""

    as_of: date
    costs: pl.LazyFrame
    inventory: pl.LazyFrame | None = None
    catalog: Catalog = field(default_factory=bundled)
    budgets: Sequence[NativeBudget] = ()      # the clouds' own budgets, from the providers this run
    owners: OwnersConfig | None = None        # teams, their accounts, tag values and budgets
    #: results several rules share, computed once per evaluation (see ``resources.all_lake_costs``)
    memo: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)


class Params(BaseModel):
    """Base of every kind's parameters: frozen, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, eq=False)
class RuleInstance:
    """One validated rule from a YAML file."""

    id: str
    kind: str
    severity: str
    description: str | None
    filter: FilterSpec
    params: Params  # an instance of the kind's own Params model (``impl.Params``)
    impl: "Rule"
    file: str
    line: int | None


ParamsModel = Params  # the base class, under a name the Protocol below can use


class Rule(Protocol):
    """A rule kind: a class registered in :data:`RULES`, instantiated once per rule instance.

    It may also define ``prepare(rule, ctx)``: the engine calls it for every rule before any is
    evaluated, so a kind can note in ``ctx.memo`` what it will read and the rules evaluated before it
    compute that once for all (``resources.want_all_lake_costs``)."""

    kind_name: ClassVar[str]  # set by RULES.register
    finding_kind: ClassVar[str]
    Params: ClassVar[type[ParamsModel]]

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]: ...


RULES: Registry[type[Rule]] = Registry("rule kind", name_attr="kind_name")


def normalise_key(key: str) -> str:
    """Tag keys match ignoring case and surrounding spaces (the lake stores them that way)."""
    return key.strip().lower()


def tag_value(key: str) -> pl.Expr:
    """The value of tag ``key`` in ``x_Tags`` (null when absent); bracket notation handles any key."""
    import polars as pl

    return pl.col(TAGS).str.json_path_match(f"$[{json.dumps(normalise_key(key), ensure_ascii=False)}]")


def tag_sets(ctx: RuleContext, exprs: Sequence[pl.Expr]) -> pl.DataFrame:
    """Every distinct ``x_Tags`` of the context's rollup (read once per evaluation and shared by
    the rules) with ``exprs`` computed on each: the lookup table ``rollup.join_tag_sets`` joins
    to any of the rollup's rows (tag-coverage, tag dimensions of anomalies)."""
    from costguard.rollup import tag_sets as distinct

    key = "tag_sets"
    if key not in ctx.memo:
        ctx.memo[key] = distinct(ctx.costs, [])
    return ctx.memo[key].with_columns(*exprs) if exprs else ctx.memo[key]


def as_categories(lf: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    """``columns`` (strings) as Categorical, for a group-by that picks a value per group
    (``first``, ``max_by``): polars' group-by holds picked strings per row and group, categories as
    one integer. Per resource over a 50M-row month: 2.0 GB -> 0.5 GB. Cast back to String after."""
    import polars as pl

    return lf.with_columns(pl.col(c).cast(pl.Categorical) for c in columns)


def check_filter(flt: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems in a ``filter:`` mapping, as (key, message) pairs."""
    problems = []
    for col, val in flt.items():
        if not isinstance(col, str):
            problems.append((str(col), "filter keys must be column names or tag:KEY"))
        elif col.startswith(TAG_PREFIX):
            if not normalise_key(col[len(TAG_PREFIX):]):
                problems.append((col, "tag: needs a key, e.g. tag:team"))
        elif col not in DIMENSIONS:
            problems.append((col, f"unknown column {col!r}; filterable: {', '.join(DIMENSIONS)} or tag:KEY"))
        vals = val if isinstance(val, list) else [val]
        if not vals or not all(isinstance(v, str) for v in vals):
            problems.append((str(col), "value must be a string or a non-empty list of strings (quote numbers)"))
    return problems


def apply_filter(lf: pl.LazyFrame, flt: FilterSpec) -> pl.LazyFrame:
    """Keep rows matching every entry: column (or ``tag:KEY``) equal to the value or one of the values."""
    import polars as pl

    for col, val in flt.items():
        values = [val] if isinstance(val, str) else list(val)
        expr = tag_value(col[len(TAG_PREFIX):]) if col.startswith(TAG_PREFIX) else pl.col(col)
        lf = lf.filter(expr.is_in(values))
    return lf


def single(flt: FilterSpec, *cols: str) -> str | None:
    """The filter's value for the first of ``cols`` that has exactly one value."""
    for col in cols:
        val = flt.get(col)
        if isinstance(val, str):
            return val
        if isinstance(val, list) and len(val) == 1:
            return val[0]
    return None


def day_range(start: date, end: date) -> pl.Expr:
    """Rows whose charge day is in ``[start, end)``."""
    import polars as pl

    return (pl.col(DATE) >= start) & (pl.col(DATE) < end)


def to_month(amount: Decimal, days: int) -> Decimal:
    """Scale an amount over ``days`` to 30 days (exact to the lake's 10 places)."""
    return (amount * 30 / days).quantize(MONEY_PLACES)


def ratio(num: Decimal, den: Decimal) -> Decimal:
    return (num / den).quantize(RATIO_PLACES)


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_PLACES = tuple(Decimal(1).scaleb(-p) for p in range(11))


def fmt_money(amount: Decimal, currency: str | None, places: int = 2) -> str:
    """Human text only: ``$1,234.50`` / ``1,234.50 CHF``."""
    q = amount.quantize(_PLACES[places] if places < len(_PLACES) else Decimal(1).scaleb(-places))
    sym = _SYMBOLS.get(currency or "")
    if sym:
        return f"-{sym}{-q:,}" if q < 0 else f"{sym}{q:,}"
    return f"{q:,} {currency or ''}".rstrip()


def fmt_pct(share: Decimal, places: int = 1, *, floor: bool = False) -> str:
    """``Decimal("0.8734")`` → ``87.3`` (no trailing zeros for whole numbers: ``0.95`` → ``95``).

    ``floor=True`` rounds down: a measured value compared with a target must never print as
    reaching it when it does not (98.95% is "98.9%", not "99%", against a 99% target)."""
    p = (share * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR if floor else ROUND_HALF_EVEN)
    return f"{p:f}".rstrip("0").rstrip(".") if "." in f"{p:f}" else f"{p:f}"


def iso_window(start: date, end_inclusive: date) -> dict[str, str]:
    """Evidence form of a window: half-open ``[start, end)`` ISO dates."""
    return {"start": start.isoformat(), "end": (end_inclusive + timedelta(days=1)).isoformat()}


_FENCE = re.compile(r"```yaml\n(.*?)```", re.S)


def docstring_example(cls: type) -> str | None:
    """The first ```yaml fenced block in a class docstring, dedented."""
    m = _FENCE.search(inspect.cleandoc(cls.__doc__ or ""))
    return textwrap.dedent(m.group(1)) if m else None
