"""CUR 2.0 (AWS Data Exports ``COST_AND_USAGE_REPORT``) rows → FOCUS 1.2 columns.

The mapping follows the FinOps Foundation's focus_converters rules for CUR 2.0
(``conversion_rules_export/aws.csv``), with ServiceCategory from its ``aws_category_mapping.csv``
(see ``data/SOURCES.md``). Money columns that map one to one (BilledCost, ListCost,
ContractedCost) are passed through untouched, so ``focus.normalize`` parses them and rejects a row
whose amount cannot be read, exactly as for a FOCUS file. EffectiveCost is computed (amortised
reservations and savings plans) from the decimal values.

Differences a reader should know (also in docs/aws.md):

- ``resource_tags`` keys lose their ``user_`` prefix (``user_team`` → ``team``), as in the FOCUS
  export; ``aws_…`` keys stay as they are.
- ServiceName is ``product['product_name']`` when the export has it, else the product code.
- ChargeFrequency: fees and purchases One-Time, RI/SP recurring fees Recurring, usage Usage-Based.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import polars as pl

from costguard import focus
from costguard.errors import DataError

REQUIRED = ("line_item_usage_start_date", "line_item_unblended_cost", "line_item_usage_account_id",
            "bill_payer_account_id", "line_item_currency_code")

CHARGE_CATEGORY = {
    "Tax": "Tax",
    "Fee": "Purchase", "SavingsPlanUpfrontFee": "Purchase", "RIFee": "Purchase", "SavingsPlanRecurringFee": "Purchase",
    "Usage": "Usage", "SavingsPlanCoveredUsage": "Usage", "SavingsPlanNegation": "Usage", "DiscountedUsage": "Usage",
    "BundledDiscount": "Usage", "Discount": "Usage", "PrivateRateDiscount": "Usage", "EdpDiscount": "Usage",
    "Credit": "Credit", "Refund": "Adjustment",
}
CHARGE_FREQUENCY = {
    "Fee": "One-Time", "SavingsPlanUpfrontFee": "One-Time", "Refund": "One-Time", "Credit": "One-Time", "Tax": "One-Time",
    "RIFee": "Recurring", "SavingsPlanRecurringFee": "Recurring",
}
PRICING_CATEGORY = {"OnDemand": "Standard", "Reserved": "Committed", "Spot": "Dynamic"}


@cache
def service_categories() -> dict[str, str]:
    text = resources.files("costguard.providers.aws").joinpath("data", "aws_category_mapping.csv").read_text(encoding="utf-8")
    df = pl.read_csv(text.encode(), infer_schema=False)
    return dict(zip(df["product_code"].to_list(), df["ServiceCategory"].to_list(), strict=True))


def looks_like_cur2(columns: list[str]) -> bool:
    return {"line_item_unblended_cost", "line_item_usage_start_date"} <= set(columns)


def to_focus(raw: pl.LazyFrame, *, file: str) -> pl.LazyFrame:
    """FOCUS-named columns from a CUR 2.0 frame (``x_Line`` passed through), ready for ``focus.normalize``."""
    schema = raw.collect_schema()
    names = set(schema.names())
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        hint = " (this looks like a FOCUS export: use costs: {source: focus_export})" if "BilledCost" in names else ""
        raise DataError(f"{file}: not a CUR 2.0 export: missing column(s) {', '.join(missing)}{hint}")

    def raw_col(n: str) -> pl.Expr:
        """The column as it is (typed or text), or null when the export does not have it."""
        return pl.col(n) if n in names else pl.lit(None, pl.String)

    def text(n: str) -> pl.Expr:
        """A string column with empty strings as null (CUR parquet writes "" for missing values)."""
        if n not in names:
            return pl.lit(None, pl.String)
        c = pl.col(n).cast(pl.String)
        return pl.when(c.str.strip_chars() == "").then(None).otherwise(c)

    def money(n: str) -> pl.Expr:
        """A decimal value (text is parsed; unreadable → null, caught through BilledCost)."""
        if n not in names:
            return pl.lit(None, focus.DECIMAL)
        c = pl.col(n)
        if schema[n] == pl.String:
            c = pl.when(c.str.strip_chars() == "").then(None).otherwise(c.str.strip_chars())
        return c.cast(focus.DECIMAL, strict=False)

    def amount(n: str) -> pl.Expr:
        """A money column passed through untouched, so normalize rejects unreadable amounts."""
        if n not in names:
            return pl.lit(None, pl.String)
        if schema[n] == pl.String:
            c = pl.col(n)
            return pl.when(c.str.strip_chars() == "").then(None).otherwise(c)
        return pl.col(n)

    def first_amount(*cols: str) -> pl.Expr:
        """The first non-null of the money columns the export has (same type, no casting)."""
        have = [amount(n) for n in cols if n in names]
        if not have:
            return pl.lit(None, pl.String)
        return have[0] if len(have) == 1 else pl.coalesce(have)

    def from_map(col: str, key: str) -> pl.Expr:
        if col not in names:
            return pl.lit(None, pl.String)
        dt = schema[col]
        if isinstance(dt, pl.List) and isinstance(dt.inner, pl.Struct):
            return (pl.col(col).list.eval(pl.element().filter(pl.element().struct.field("key") == key)
                                          .struct.field("value")).list.first().cast(pl.String))
        if isinstance(dt, pl.Struct):
            return pl.col(col).struct.field(key).cast(pl.String) if key in [f.name for f in dt.fields] else pl.lit(None, pl.String)
        if dt == pl.String:
            return pl.col(col).str.json_path_match(f"$.{key}")
        return pl.lit(None, pl.String)

    kind = text("line_item_line_item_type")
    unblended = money("line_item_unblended_cost")
    zero = pl.lit(0, focus.DECIMAL)
    effective = (
        pl.when(kind == "SavingsPlanCoveredUsage").then(money("savings_plan_savings_plan_effective_cost"))
        .when(kind == "SavingsPlanRecurringFee").then(money("savings_plan_total_commitment_to_date") - money("savings_plan_used_commitment"))
        .when(kind.is_in(["SavingsPlanNegation", "SavingsPlanUpfrontFee"])).then(zero)
        .when(kind == "DiscountedUsage").then(money("reservation_effective_cost"))
        .when(kind == "RIFee").then(money("reservation_unused_amortized_upfront_fee_for_billing_period").fill_null(zero)
                                    + money("reservation_unused_recurring_fee").fill_null(zero))
        .when((kind == "Fee") & text("reservation_reservation_arn").is_not_null()).then(zero)
        .otherwise(unblended)
    )
    sp_arn, ri_arn = text("savings_plan_savings_plan_arn"), text("reservation_reservation_arn")
    product_code = text("line_item_product_code")
    term = text("pricing_term")
    committed_usage = kind.is_in(["SavingsPlanCoveredUsage", "DiscountedUsage"])
    exprs = {
        "AvailabilityZone": text("line_item_availability_zone"),
        "BilledCost": first_amount("line_item_net_unblended_cost", "line_item_unblended_cost"),
        "BillingAccountId": text("bill_payer_account_id"),
        "BillingAccountName": text("bill_payer_account_name"),
        "BillingCurrency": text("line_item_currency_code"),
        "BillingPeriodEnd": raw_col("bill_billing_period_end_date"),
        "BillingPeriodStart": raw_col("bill_billing_period_start_date"),
        "ChargeCategory": kind.replace_strict(CHARGE_CATEGORY, default=None, return_dtype=pl.String),
        "ChargeClass": pl.lit(None, pl.String),
        "ChargeDescription": text("line_item_line_item_description"),
        "ChargeFrequency": kind.replace_strict(CHARGE_FREQUENCY, default="Usage-Based", return_dtype=pl.String),
        "ChargePeriodEnd": raw_col("line_item_usage_end_date"),
        "ChargePeriodStart": raw_col("line_item_usage_start_date"),
        "CommitmentDiscountCategory": pl.when(sp_arn.is_not_null()).then(pl.lit("Spend"))
        .when(ri_arn.is_not_null()).then(pl.lit("Usage")).otherwise(pl.lit(None, pl.String)),
        "CommitmentDiscountId": pl.coalesce(sp_arn, ri_arn),
        "CommitmentDiscountStatus": pl.when(committed_usage).then(pl.lit("Used"))
        .when(kind.is_in(["RIFee", "SavingsPlanRecurringFee"]) & pl.coalesce(sp_arn, ri_arn).is_not_null()).then(pl.lit("Unused"))
        .otherwise(pl.lit(None, pl.String)),
        "CommitmentDiscountType": pl.when(sp_arn.is_not_null()).then(pl.lit("Savings Plan"))
        .when(ri_arn.is_not_null()).then(pl.lit("Reserved Instance")).otherwise(pl.lit(None, pl.String)),
        "ConsumedQuantity": pl.when(kind.is_in(["Usage", "SavingsPlanCoveredUsage", "DiscountedUsage"]))
        .then(money("line_item_usage_amount")),
        "ConsumedUnit": pl.when(kind.is_in(["Usage", "SavingsPlanCoveredUsage", "DiscountedUsage"])).then(text("pricing_unit")),
        "ContractedCost": amount("line_item_unblended_cost"),
        "ContractedUnitPrice": money("line_item_unblended_rate"),
        "EffectiveCost": effective,
        "InvoiceId": text("bill_invoice_id"),
        "InvoiceIssuerName": pl.coalesce(text("bill_invoicing_entity"), pl.lit("Amazon Web Services, Inc.")),
        "ListCost": first_amount("pricing_public_on_demand_cost", "line_item_unblended_cost"),
        "ListUnitPrice": money("pricing_public_on_demand_rate"),
        "PricingCategory": pl.when(committed_usage).then(pl.lit("Committed"))
        .otherwise(term.replace_strict(PRICING_CATEGORY, default=None, return_dtype=pl.String)),
        "PricingQuantity": money("line_item_usage_amount"),
        "PricingUnit": text("pricing_unit"),
        "ProviderName": pl.lit("AWS"),
        "PublisherName": pl.coalesce(text("line_item_legal_entity"), pl.lit("Amazon Web Services, Inc.")),
        "RegionId": pl.coalesce(text("product_region_code"), from_map("product", "region_code")),
        "RegionName": pl.coalesce(text("product_location"), from_map("product", "location")),
        "ResourceId": text("line_item_resource_id"),
        "ServiceCategory": product_code.replace_strict(service_categories(), default="Other", return_dtype=pl.String),
        "ServiceName": pl.coalesce(from_map("product", "product_name"), text("product_product_name"), product_code),
        "SkuId": text("product_sku"),
        "SkuPriceId": pl.coalesce(text("pricing_rate_code"), text("pricing_rate_id")),
        "SubAccountId": text("line_item_usage_account_id"),
        "SubAccountName": text("line_item_usage_account_name"),
        "Tags": _tags(schema.get("resource_tags") if "resource_tags" in names else None),
    }
    out = [e.alias(n) for n, e in exprs.items()]
    if focus.LINE in names:
        out.append(pl.col(focus.LINE))
    return raw.select(out)


def _tags(dtype: pl.DataType | None) -> pl.Expr:
    """``resource_tags`` with ``user_`` dropped from the keys (map, struct or JSON text)."""
    if dtype is None:
        return pl.lit(None, pl.String)
    c = pl.col("resource_tags")
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        return c.list.eval(pl.element().struct.with_fields(pl.field("key").str.replace(r"^user_", "")))
    if dtype == pl.String:
        return c.str.replace_all(r'"user_([^"]*)"(\s*):', r'"$1"$2:')
    if isinstance(dtype, pl.Struct):
        return c.struct.rename_fields([f.name[5:] if f.name.startswith("user_") else f.name for f in dtype.fields])
    return pl.lit(None, pl.String)
