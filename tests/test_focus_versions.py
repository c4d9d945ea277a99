"""costguard.focus_versions: spec files, version detection, 1.3/1.4 aliases onto the lake.

Headers are real where they exist: the FOCUS 1.0 sample export (fixtures/focus/focus_sample.csv)
and the worked-example CSVs of FOCUS_Spec v1.2 (fixtures/focus/spec_example_headers.json). No 1.3
or 1.4 spec JSON is packaged (see costguard/spec/ATTRIBUTION.md), so 1.3/1.4 headers are built
here from the 1.2 spec's columns plus the 1.3/1.4 column names as written on the FOCUS_Spec pages.
Expected values are spelled out literally so a wrong spec file or a wrong derivation fails.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from costguard import focus_versions as fv

FIXTURES = Path(__file__).parent / "fixtures" / "focus"

MANDATORY_1_0_TO_1_2 = {
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
}
INTRODUCED_1_1 = {"CapacityReservationId", "CapacityReservationStatus", "CommitmentDiscountQuantity",
                  "CommitmentDiscountUnit", "ServiceSubcategory", "SkuMeter", "SkuPriceDetails"}
INTRODUCED_1_2 = {"BillingAccountType", "SubAccountType", "InvoiceId", "PricingCurrency",
                  "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
                  "PricingCurrencyListUnitPrice"}
NEW_IN_1_3 = ["ServiceProviderName", "HostProviderName", "AllocatedMethodId", "AllocatedMethodDetails",
              "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags", "ContractApplied"]
NEW_IN_1_4 = ["InvoiceDetailId", "CommitmentProgramEligibilityDetails"]
SPEC_COMMITS = {"1.0": "f7f58a0a7e545258779839d4f2114819f278c6f3",
                "1.1": "6108d409686bfbfd74c118b2ab50f9fa1891b3ca",
                "1.2": "7296e3146fb931ee32b6496fa6e4200e7f4384f7"}


def sample_header() -> list[str]:
    with open(FIXTURES / "focus_sample.csv", newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f))


def example_headers() -> list[dict]:
    return json.loads((FIXTURES / "spec_example_headers.json").read_text(encoding="utf-8"))["headers"]


def columns_1_2() -> list[str]:
    return list(fv.spec_columns("1.2"))


def header_1_3(*, keep_deprecated: bool) -> list[str]:
    """Every 1.2 column plus the 1.3 ones; ProviderName/PublisherName kept or dropped."""
    dropped = set() if keep_deprecated else {"ProviderName", "PublisherName"}
    return [c for c in columns_1_2() if c not in dropped] + NEW_IN_1_3


# ------------------------------------------------------------------------------------- spec files


def test_packaged_spec_files_load_with_their_pinned_commits() -> None:
    assert fv.packaged_versions() == ("1.0", "1.1", "1.2")
    for v, commit in SPEC_COMMITS.items():
        doc = json.loads((Path(fv.__file__).parent / "spec" / f"focus_columns_v{v}.json").read_text(encoding="utf-8"))
        assert (doc["source"], doc["ref"], doc["commit"]) == ("FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec", f"v{v}", commit)
        for c in doc["columns"]:
            assert {"ColumnId", "Feature level", "Allows nulls", "Data type", "Introduced", "Requirements"} <= set(c)
            assert c["Data type"] in {"String", "Decimal", "Date/Time", "JSON"}


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_mandatory_sets_of_packaged_versions(version: str) -> None:
    assert fv.mandatory(version) == MANDATORY_1_0_TO_1_2


def test_column_counts_and_introduced_sets() -> None:
    assert [len(fv.spec_columns(v)) for v in fv.packaged_versions()] == [43, 50, 57]
    assert fv.introduced("1.1") == INTRODUCED_1_1
    assert fv.introduced("1.2") == INTRODUCED_1_2
    assert fv.introduced("1.3") == set(NEW_IN_1_3)
    assert fv.introduced("1.4") == set(NEW_IN_1_4)


def test_unpackaged_and_unknown_versions() -> None:
    for v in ("1.3", "1.4"):
        with pytest.raises(fv.SpecNotPackaged, match=v):
            fv.spec_columns(v)
    with pytest.raises(ValueError, match="unknown FOCUS version"):
        fv.spec_columns("1.5")
    with pytest.raises(ValueError, match="unknown FOCUS version"):
        fv.mandatory("0.5")


def test_module_does_not_import_polars() -> None:
    code = "import sys, costguard.focus_versions; sys.exit('polars' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -------------------------------------------------------------------------------------- detection


def test_detects_the_1_0_sample_export() -> None:
    assert fv.detect_version(sample_header()) == ("1.0", "1.0: has no column first defined in 1.1 or later")


@pytest.mark.parametrize("group, expected, decided_by", [
    (0, "1.1", "CommitmentDiscountQuantity"),   # commitment_discount_flexibility/*
    (1, "1.1", "CommitmentDiscountQuantity"),   # commitment_discount_scenarios/*purchase*
    (2, "1.1", "CommitmentDiscountQuantity"),   # commitment_discount_scenarios/*usage*
    (3, "1.1", "CapacityReservationId"),        # saas_examples simple/spend agreements
    (4, "1.2", "PricingCurrency"),              # saas_examples/virtual_currency_pricing_model_*
])
def test_detects_the_spec_worked_examples(group: int, expected: str, decided_by: str) -> None:
    h = example_headers()[group]
    version, reason = fv.detect_version(h["columns"])
    assert version == expected, h["files"][0]
    assert reason.startswith(f"{expected}: has ") and decided_by in reason


def test_full_1_2_header_is_1_2() -> None:
    version, reason = fv.detect_version(columns_1_2())
    assert version == "1.2"
    assert reason == "1.2: has BillingAccountType, InvoiceId, PricingCurrency and 4 more (first defined in 1.2)"


def test_1_3_headers() -> None:
    assert fv.detect_version(header_1_3(keep_deprecated=True)) == (
        "1.3", "1.3: has AllocatedMethodDetails, AllocatedMethodId, AllocatedResourceId and 5 more (first defined in 1.3)")
    version, reason = fv.detect_version(header_1_3(keep_deprecated=False))
    assert version == "1.3" and reason.endswith(", no ProviderName")
    minimal = sorted(MANDATORY_1_0_TO_1_2 - {"ProviderName", "PublisherName"}) + ["ServiceProviderName", "HostProviderName"]
    assert fv.detect_version(minimal) == ("1.3", "1.3: has HostProviderName and ServiceProviderName (first defined in 1.3), no ProviderName")
    # split cost allocation columns alone are enough
    assert fv.detect_version(sorted(MANDATORY_1_0_TO_1_2) + ["AllocatedTags"])[0] == "1.3"


@pytest.mark.parametrize("marker", NEW_IN_1_4)
def test_1_4_headers(marker: str) -> None:
    version, reason = fv.detect_version(header_1_3(keep_deprecated=False) + [marker])
    assert version == "1.4"
    assert reason == f"1.4: has {marker} (first defined in 1.4), no ProviderName"


# -------------------------------------------------------------------------------- aliases, mandatory


def test_aliases_fill_provider_and_publisher_from_service_provider() -> None:
    h = header_1_3(keep_deprecated=False)
    src = fv.lake_sources(h)
    assert src["ProviderName"] == "ServiceProviderName"
    assert src["PublisherName"] == "ServiceProviderName"
    assert src["BilledCost"] == "BilledCost"
    assert set(src) == set(columns_1_2())
    assert fv.missing_mandatory(h, "1.3") == []
    assert fv.missing_mandatory(h, "1.4") == []


def test_a_file_keeps_its_own_provider_name() -> None:
    src = fv.lake_sources(header_1_3(keep_deprecated=True))
    assert src["ProviderName"] == "ProviderName" and src["PublisherName"] == "PublisherName"


def test_missing_mandatory_without_alias_source() -> None:
    h = [c for c in sample_header() if c not in ("ProviderName", "BilledCost")]
    assert fv.missing_mandatory(h, "1.2") == ["BilledCost", "ProviderName"]
    assert "ProviderName" not in fv.lake_sources(h)
    assert fv.missing_mandatory(h + ["ServiceProviderName"], "1.3") == ["BilledCost"]


def test_alias_targets_are_lake_columns_and_sources_are_carried() -> None:
    lake = fv.spec_columns(fv.LAKE_VERSION)
    for target, sources in fv.ALIASES.items():
        assert target in lake and lake[target]["Feature level"] == "Mandatory"
        assert target not in fv.CARRIED_COLUMNS
        assert sources and all(s in fv.CARRIED_COLUMNS for s in sources)


def test_unpackaged_versions_require_the_lake_mandatory_set() -> None:
    assert fv.mandatory("1.3") == MANDATORY_1_0_TO_1_2
    assert fv.mandatory("1.4") == MANDATORY_1_0_TO_1_2


def test_carried_columns() -> None:
    # No packaged JSON defines a 1.3/1.4 column yet, so no data type is known; this changes (and the
    # test with it) when focus_columns_v1.3.json / v1.4.json are packaged.
    assert dict(fv.CARRIED_COLUMNS) == {name: None for name in sorted(NEW_IN_1_3 + NEW_IN_1_4)}
    assert not set(fv.CARRIED_COLUMNS) & set(columns_1_2())
