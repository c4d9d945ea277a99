"""The price catalogue: list prices and instance sizes, bundled (AWS) or supplied by the user.

Rules use it for two things: the types a resource could be resized to (rightsizing, previous
generation) and the price of a resource that has no cost in the lake yet (new, or its bill has not
arrived). Every :class:`Price` says where it comes from, so a finding can show it.

The bundled catalogue (``costguard/catalogdata/``, sources in its ``SOURCES.md``) holds AWS list
prices in USD: EC2 on-demand Linux per region, EBS volume types and IOPS, snapshots, public IPv4
addresses, load balancers, NAT gateways and CloudWatch Logs storage. A user catalogue (CSV, the
``catalog:`` files of the config) adds other clouds or replaces bundled rows with negotiated
prices; its rows win over bundled rows with the same (provider, resource class, sku, region).

User catalogue columns (``docs/rules.md`` has an example)::

    provider,resource_class,sku,region,unit,price,currency[,vcpu,memory_gib,architecture,family,family_group,gpu,current_generation,source]

``unit`` is one of :data:`UNITS`; ``region`` ``*`` applies everywhere. A row with ``vcpu`` and
``memory_gib`` also defines an instance (or database) type that rightsizing may recommend.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from costguard.errors import ConfigError, ConfigIssue

DATA = Path(__file__).with_name("catalogdata")
HOURS_PER_MONTH = Decimal(730)  # the convention of AWS, Azure and GCP price calculators
UNITS = ("hour", "month", "gb_month", "iops_month", "mibps_month", "gb")
BASE_REGION = {"aws": "us-east-1"}  # the region other regions' estimates are derived from
REQUIRED = ("provider", "resource_class", "sku", "region", "unit", "price", "currency")
OPTIONAL = ("vcpu", "memory_gib", "architecture", "family", "family_group", "gpu", "current_generation", "source")
_FAMILY = re.compile(r"^([a-z]+?)(\d+)([a-z0-9\-]*)$")


@dataclass(frozen=True, slots=True)
class Price:
    """A list price per ``unit``; ``estimated`` when derived from ``BASE_REGION`` with a region factor."""

    amount: Decimal
    unit: str
    currency: str
    region: str
    source: str
    estimated: bool = False
    factor: Decimal | None = None

    def per_month(self) -> Decimal:
        """The monthly price of one unit: hourly × 730, otherwise the amount itself."""
        return self.amount * HOURS_PER_MONTH if self.unit == "hour" else self.amount

    def describe(self) -> str:
        what = f"{self.amount} {self.currency}/{self.unit.replace('_', '-')} ({self.region}, {self.source})"
        return what + (f", estimated as base region × {self.factor}" if self.estimated else "")

    def as_evidence(self) -> dict[str, object]:
        out: dict[str, object] = {"amount": self.amount, "unit": self.unit, "currency": self.currency,
                                  "region": self.region, "source": self.source}
        if self.estimated:
            out["estimated"] = True
            out["region_factor"] = self.factor
        return out


@dataclass(frozen=True, slots=True)
class InstanceType:
    """A size a resource can be changed to. ``group``: types in one group are interchangeable
    for rightsizing (AWS: the c/m/r classes of one generation and processor, e.g. c5a/m5a/r5a)."""

    provider: str
    resource_class: str
    name: str
    family: str
    group: str
    vcpu: Decimal
    memory_gib: Decimal
    architecture: str
    gpu: int = 0
    current: bool = True


def aws_family_group(family: str) -> str:
    """``m5a`` → ``cmr5a`` (compute/general/memory classes of one generation and processor are
    interchangeable: Compute Optimizer recommends r5a.large for an m5a.xlarge); any other class
    (t, x, i, g, p, …) is its own group."""
    m = _FAMILY.match(family)
    if m and m.group(1) in ("c", "m", "r"):
        return f"cmr{m.group(2)}{m.group(3)}"
    return family


class Catalog:
    """Prices keyed by (provider, resource class, sku, region) and instance types by
    (provider, resource class, name). Provider names are FOCUS ProviderName, matched ignoring case."""

    def __init__(self, prices: dict[tuple[str, str, str, str], Price], types: dict[tuple[str, str, str], InstanceType],
                 factors: dict[tuple[str, str], Decimal], files: Sequence[str] = ()) -> None:
        self._prices = prices
        self._types = types
        self._factors = factors
        self._index: dict[tuple[str, str, str, str], list[InstanceType]] | None = None
        self._found: dict[tuple[str | None, str, str | None, str | None], Price | None] = {}
        self.files = tuple(files)  # user catalogue files layered over the bundled one

    def price(self, provider: str | None, resource_class: str, sku: str | None, region: str | None) -> Price | None:
        """The list price in ``region``: an exact row, an any-region row, or (flagged estimated)
        the base region's price × the region's factor. None when the catalogue has no price.
        Answers are kept (prices are immutable): rightsizing asks for the same few thousand
        (type, region) pairs tens of thousands of times per evaluation."""
        key = (provider, resource_class, sku, region)
        try:
            return self._found[key]
        except KeyError:
            got = self._found[key] = self._price(provider, resource_class, sku, region)
            return got

    def _price(self, provider: str | None, resource_class: str, sku: str | None, region: str | None) -> Price | None:
        if not provider or not sku:
            return None
        p, c, s, r = provider.lower(), resource_class, sku.lower(), (region or "").lower()
        got = self._prices.get((p, c, s, r)) or self._prices.get((p, c, s, "*"))
        if got is not None:
            return got
        base = BASE_REGION.get(p)
        if base is None or not r:
            return None
        got = self._prices.get((p, c, s, base))
        factor = self._factors.get((p, r))
        if got is None or factor is None:
            return None
        return replace(got, amount=(got.amount * factor).quantize(Decimal("1e-6")), region=r, estimated=True, factor=factor)

    def instance_type(self, provider: str | None, resource_class: str, name: str | None) -> InstanceType | None:
        if not provider or not name:
            return None
        return self._types.get((provider.lower(), resource_class, name.lower()))

    def instance_types(self, provider: str | None, resource_class: str, *, group: str | None = None,
                       family: str | None = None) -> list[InstanceType]:
        """Types of a provider and class, optionally only one group or family (indexed once)."""
        if self._index is None:
            idx: dict[tuple[str, str, str, str], list[InstanceType]] = {}
            for (tp, tc, _n), t in self._types.items():
                for key in ((tp, tc, "", ""), (tp, tc, "g", t.group), (tp, tc, "f", t.family)):
                    idx.setdefault(key, []).append(t)
            self._index = idx
        p = (provider or "").lower()
        key = (p, resource_class, "g", group) if group is not None else (p, resource_class, "f", family) if family is not None \
            else (p, resource_class, "", "")
        return list(self._index.get(key, []))

    def __len__(self) -> int:
        return len(self._prices)


# ---- loading ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def bundled() -> Catalog:
    """The catalogue shipped with costguard (read once per process)."""
    prices: dict[tuple[str, str, str, str], Price] = {}
    types: dict[tuple[str, str, str], InstanceType] = {}
    factors: dict[tuple[str, str], Decimal] = {}
    with (DATA / "aws_instance_types.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            fam = r["family"]
            types[("aws", "instance", r["instance_type"].lower())] = InstanceType(
                "AWS", "instance", r["instance_type"], fam, aws_family_group(fam), Decimal(r["vcpu"]),
                Decimal(r["memory_gib"]), r["architecture"], int(r["gpu"] or 0), r["current_generation"] == "true")
    with gzip.open(DATA / "aws_instance_prices.csv.gz", "rt", newline="") as fh:
        for r in csv.DictReader(fh):
            prices[("aws", "instance", r["instance_type"].lower(), r["region"])] = Price(
                Decimal(r["usd_per_hour"]), "hour", "USD", r["region"], r["source"])
    with (DATA / "aws_other_prices.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            prices[("aws", r["resource_class"], r["sku"].lower(), r["region"])] = Price(
                Decimal(r["usd"]), r["unit"], "USD", r["region"], r["source"])
    with (DATA / "aws_region_factors.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            factors[("aws", r["region"])] = Decimal(r["factor"])
    return Catalog(prices, types, factors)


def load_catalog(paths: Iterable[str | Path], *, base: Catalog | None = None) -> Catalog:
    """The bundled catalogue with user CSV files layered on top, in order. Every problem is
    reported at once, naming file, line and column; nothing is half-loaded."""
    base = base or bundled()
    prices = dict(base._prices)
    types = dict(base._types)
    issues: list[ConfigIssue] = []
    files = []
    for path in paths:
        files.append(str(path))
        _read_user_file(Path(path), prices, types, issues)
    if issues:
        raise ConfigError(issues)
    return Catalog(prices, types, dict(base._factors), files=[*base.files, *files])


def _read_user_file(path: Path, prices: dict, types: dict, issues: list[ConfigIssue]) -> None:
    f = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        issues.append(ConfigIssue(f, None, "", "price catalogue file not found"))
        return
    except (OSError, UnicodeDecodeError) as e:
        issues.append(ConfigIssue(f, None, "", f"cannot read the price catalogue: {e}"))
        return
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        what = []
        if missing:
            what.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            what.append(f"unknown column(s) {', '.join(unknown)}")
        issues.append(ConfigIssue(f, 1, "", "; ".join(what) + f" (columns: {', '.join(REQUIRED)}, optional {', '.join(OPTIONAL)})"))
        return
    reader.fieldnames = header
    for i, raw in enumerate(reader, start=2):
        r = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        n = len(issues)

        def bad(col: str, msg: str) -> None:
            issues.append(ConfigIssue(f, i, col, msg))

        for col in ("provider", "resource_class", "sku", "region"):
            if not r.get(col):
                bad(col, "must not be empty")
        if r.get("unit") not in UNITS:
            bad("unit", f"{r.get('unit')!r} is not a unit; use one of {', '.join(UNITS)}")
        price = _decimal(r.get("price"))
        if price is None or price < 0:
            bad("price", f"{r.get('price')!r} is not a price (a decimal number >= 0, e.g. 0.096)")
        if not re.fullmatch(r"[A-Z]{3}", r.get("currency", "")):
            bad("currency", f"{r.get('currency')!r} is not an ISO 4217 code (three capital letters)")
        vcpu, mem = _decimal(r.get("vcpu")), _decimal(r.get("memory_gib"))
        if r.get("vcpu") and (vcpu is None or vcpu <= 0):
            bad("vcpu", f"{r.get('vcpu')!r} is not a positive number")
        if r.get("memory_gib") and (mem is None or mem <= 0):
            bad("memory_gib", f"{r.get('memory_gib')!r} is not a positive number")
        if bool(r.get("vcpu")) != bool(r.get("memory_gib")):
            bad("vcpu" if not r.get("vcpu") else "memory_gib", "give both vcpu and memory_gib to define a type, or neither")
        gen = r.get("current_generation", "").lower()
        if gen not in ("", "true", "false", "yes", "no"):
            bad("current_generation", f"{gen!r}: use true or false")
        if len(issues) != n:
            continue
        assert price is not None
        prov, cls, sku, region = r["provider"], r["resource_class"], r["sku"], r["region"]
        prices[(prov.lower(), cls, sku.lower(), region.lower())] = Price(
            price, r["unit"], r["currency"], region, r.get("source") or f"{path.name}:{i}")
        if vcpu is not None and mem is not None:
            fam = r.get("family") or sku.split(".")[0]
            types[(prov.lower(), cls, sku.lower())] = InstanceType(
                prov, cls, sku, fam, r.get("family_group") or (aws_family_group(fam) if prov.lower() == "aws" else fam),
                vcpu, mem, r.get("architecture") or "x86_64", int(_decimal(r.get("gpu")) or 0),
                gen not in ("false", "no"))


def _decimal(s: str | None) -> Decimal | None:
    if not s:
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None
