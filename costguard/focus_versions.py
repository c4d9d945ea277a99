"""FOCUS versions: which one a file's header follows, and how 1.3/1.4 columns reach the lake.

Everything here is derived from the packaged spec files ``costguard/spec/focus_columns_v*.json``
(written by ``scripts/focus_spec_columns.py`` from the FOCUS_Spec repository) wherever such a file
exists. Versions 1.0, 1.1 and 1.2 are packaged. **1.3 and 1.4 are not**: the FOCUS_Spec snapshot
available when this was written ends in June 2025, before either was tagged, so their column
definitions (types, nullability, feature levels) are unknown to costguard. Where a 1.3/1.4 fact is
still needed it is the smallest one possible (column names), each taken from a FOCUS_Spec column
page and cited below; those pages are stored versions of
``specification/datasets/cost_and_usage/columns/*.md`` that could not be tied to the v1.3 or v1.4
tag, so they may differ from the ratified text. Drop in ``focus_columns_v1.3.json`` /
``focus_columns_v1.4.json`` and every function below uses them instead; nothing else changes.

The lake keeps the FOCUS 1.2 columns (``LAKE_VERSION``); newer files are mapped onto them with
``ALIASES`` and their new columns are carried as-is (``CARRIED_COLUMNS``). Pure Python, no polars.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from functools import cache
from importlib import resources

SPEC_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")
LAKE_VERSION = "1.2"


class SpecNotPackaged(LookupError):
    """A known FOCUS version whose column JSON is not packaged with costguard."""


def _check(version: str) -> None:
    if version not in SPEC_VERSIONS:
        raise ValueError(f"unknown FOCUS version {version!r}; known: {', '.join(SPEC_VERSIONS)}")


@cache
def spec_columns(version: str) -> Mapping[str, Mapping]:
    """The packaged column definitions of ``version`` by ColumnId, as written in its spec JSON."""
    _check(version)
    f = resources.files("costguard").joinpath("spec", f"focus_columns_v{version}.json")
    if not f.is_file():
        raise SpecNotPackaged(f"FOCUS {version} column definitions are not packaged (no spec/{f.name})")
    return {c["ColumnId"]: c for c in json.loads(f.read_text(encoding="utf-8"))["columns"]}


def packaged_versions() -> tuple[str, ...]:
    """The versions whose spec JSON is packaged, oldest first."""
    out = []
    for v in SPEC_VERSIONS:
        try:
            spec_columns(v)
        except SpecNotPackaged:
            continue
        out.append(v)
    return tuple(out)


# Columns first defined in 1.3 / 1.4, used only while that version's JSON is not packaged. Each
# page, read at the FOCUS_Spec commit given, says "Introduced (version)" 1.3 or 1.4 (all under
# specification/datasets/cost_and_usage/columns/):
#   1.3  serviceprovidername.md @d54c158c78fc, hostprovidername.md @03c652c35e24,
#        allocatedmethodid.md @0a167c5bb7f5, allocatedmethoddetails.md @0b91cb13c227,
#        allocatedresourceid.md @00d4b9bd9061, allocatedresourcename.md @0da1788ec647,
#        allocatedtags.md @005e8b61f548, contractapplied.md @096c1cb5b97e
#   1.4  invoicedetailid.md @2168e489a90c, commitmentprogrameligibilitydetails.md @0c6c22e6978a
_INTRODUCED_UNPACKAGED = {
    "1.3": frozenset({
        "ServiceProviderName", "HostProviderName", "AllocatedMethodId", "AllocatedMethodDetails",
        "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags", "ContractApplied",
    }),
    "1.4": frozenset({"InvoiceDetailId", "CommitmentProgramEligibilityDetails"}),
}


def introduced(version: str) -> frozenset[str]:
    """Columns first defined in ``version``: its spec columns minus the previous version's (all of
    1.0's for 1.0); for a version whose JSON is not packaged, the cited names above."""
    _check(version)
    i = SPEC_VERSIONS.index(version)
    try:
        now = frozenset(spec_columns(version))
        return now - frozenset(spec_columns(SPEC_VERSIONS[i - 1])) if i else now
    except SpecNotPackaged:
        return _INTRODUCED_UNPACKAGED[version]


def _names(cols: list[str], limit: int = 3) -> str:
    shown = " and ".join(cols) if len(cols) <= 2 else ", ".join(cols[:limit])
    return shown + (f" and {len(cols) - limit} more" if len(cols) > limit else "")


def detect_version(columns: Collection[str]) -> tuple[str, str]:
    """The FOCUS version a header most likely follows, and a one-line reason naming the columns
    that decided it.

    The answer is the newest version one of whose ``introduced`` columns is in the header. It is a
    lower bound: most columns added after 1.0 are Conditional or Recommended, so a 1.2 export
    without them reads as 1.0 or 1.1 (harmless: 1.0, 1.1 and 1.2 have the same 21 Mandatory
    columns). The 1.4 markers are InvoiceDetailId and CommitmentProgramEligibilityDetails, so a
    1.4 file with neither reads as 1.3; a missing ProviderName is not used as evidence of 1.4,
    because its removal in 1.4 could not be checked against the spec.
    """
    present = set(columns)
    for v in reversed(SPEC_VERSIONS[1:]):
        hits = sorted(introduced(v) & present)
        if hits:
            reason = f"{v}: has {_names(hits)} (first defined in {v})"
            if SPEC_VERSIONS.index(v) >= SPEC_VERSIONS.index("1.3") and "ProviderName" not in present:
                reason += ", no ProviderName"
            return v, reason
    return "1.0", "1.0: has no column first defined in 1.1 or later"


ALIASES: Mapping[str, tuple[str, ...]] = {
    "ProviderName": ("ServiceProviderName",),
    "PublisherName": ("ServiceProviderName",),
}
"""Lake column -> the columns that fill it, in order, when a file does not have the lake column.

A 1.3/1.4 file that still has ``ProviderName`` / ``PublisherName`` (1.3 keeps both, deprecated)
keeps its own values; the alias is used only when the lake column is absent.

* ``ProviderName <- ServiceProviderName``. FOCUS_Spec
  ``specification/datasets/cost_and_usage/columns/serviceprovidername.md`` (@d54c158c78fc),
  "Introduced (version)": "1.3 Introduced as a replacement for ProviderName"; ``providername.md``
  (@0cfefac7168a), "Deprecated (version)": "1.3 Replaced by ServiceProviderName".
* ``PublisherName <- ServiceProviderName``. ``publishername.md`` (@0f82f3a303f9) says only
  "Deprecated (version): 1.3", naming no replacement. ServiceProviderName is the closest column:
  its notes (serviceprovidername.md, as above) make the service provider "the entity that produced
  the resources or services" except for white-label resale, and the seller in marketplace
  scenarios, which is what 1.2's PublisherName holds ("the entity that produced the resources or
  services that were purchased", ``specification/columns/publisher.md`` at tag v1.2, 7296e3146fb9).

Neither mapping is value-for-value. In 1.2 a marketplace purchase on a cloud has ProviderName =
the cloud and PublisherName = the software company (``specification/appendix/
origination_of_cost_data.md`` at v1.2, scenario 3.1); in the 1.3 entity-identification appendix
(``specification/appendix/entity_identification.md`` @07880cf8b81a, scenario 3.1)
ServiceProviderName = the marketplace seller and HostProviderName = the cloud. So after aliasing,
a rule with ``filter: {ProviderName: AWS}`` no longer matches AWS Marketplace rows from 1.3+
files; HostProviderName (carried) holds "AWS" there. Through an MSP (scenario 2.1) it is the other
way round: 1.2 PublisherName = the cloud, ServiceProviderName = the MSP. HostProviderName replaces
nothing: it is new information, carried as-is.
"""


def _lake() -> Mapping[str, Mapping]:
    return spec_columns(LAKE_VERSION)


def lake_sources(columns: Collection[str]) -> dict[str, str]:
    """Lake column -> the header column that fills it (itself, or an alias), for every lake column
    the header can fill."""
    present = set(columns)
    out = {}
    for name in _lake():
        src = name if name in present else next((a for a in ALIASES.get(name, ()) if a in present), None)
        if src is not None:
            out[name] = src
    return out


def mandatory(version: str) -> frozenset[str]:
    """Columns a file of ``version`` must have for costguard to read it, after aliasing: its spec's
    Mandatory columns, of which those in ``ALIASES`` may be filled from an alias instead.

    For a version whose JSON is not packaged (1.3, 1.4) this is the lake's own Mandatory set (1.2's
    21 columns), i.e. what costguard's rules need, not that version's list: it does not require
    ServiceProviderName or HostProviderName, whose 1.3 definitions are not packaged.
    """
    _check(version)
    try:
        spec = spec_columns(version)
    except SpecNotPackaged:
        spec = _lake()
    return frozenset(n for n, c in spec.items() if c["Feature level"] == "Mandatory")


def missing_mandatory(columns: Collection[str], version: str) -> list[str]:
    """``mandatory(version)`` columns the header has neither directly nor through an alias (sorted)."""
    present = set(columns) | set(lake_sources(columns))
    return sorted(mandatory(version) - present)


def _carried() -> dict[str, str | None]:
    packaged = packaged_versions()
    out: dict[str, str | None] = {}
    for name in sorted(introduced("1.3") | introduced("1.4")):
        defined = [v for v in packaged if name in spec_columns(v)]
        out[name] = spec_columns(defined[-1])[name]["Data type"] if defined else None
    return out


CARRIED_COLUMNS: Mapping[str, str | None] = _carried()
"""1.3/1.4 columns the lake carries as-is for later rules -> their FOCUS data type from the
newest packaged spec JSON that defines them, or None while no packaged JSON does (today: all of
them; the lake stores them as text either way, since the pages read give String or JSON).
Derived from ``introduced("1.3") | introduced("1.4")``, so it grows with the packaged specs."""
