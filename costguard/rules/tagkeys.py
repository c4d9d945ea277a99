"""Tag keys shared by ``tag-coverage`` and ``tag-policy``: normalisation and key aliases.

Keys match ignoring case and surrounding spaces (the lake's ``x_Tags`` and the inventory's
``x_tags`` store them that way). ``aliases`` maps an alias to the key it stands for
(``{env: environment}``): wherever a rule looks for ``environment``, a resource tagged ``env``
counts too. Both kinds take the same ``aliases`` parameter and read it through this module, so
coverage and policy agree on what "has an environment tag" means.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, Field

from costguard.rules.base import TAGS, normalise_key

if TYPE_CHECKING:
    import polars as pl


def _check_aliases(v: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for alias, key in v.items():
        a, k = normalise_key(alias), normalise_key(key)
        if not a or not k:
            raise ValueError("alias and key must not be empty")
        if a == k:
            raise ValueError(f"{alias!r} is an alias of itself")
        out[a] = k
    chained = sorted(set(out) & set(out.values()))
    if chained:
        raise ValueError(f"{', '.join(chained)}: a key cannot be both an alias and aliased to (write every alias "
                         "against the final key, e.g. {env: environment, stage: environment})")
    return out


#: ``{alias: key}``, normalised; used by tag-coverage and tag-policy alike.
TagAliases = Annotated[
    dict[str, str],
    AfterValidator(_check_aliases),
    Field(description="alias → the key it stands for, e.g. {env: environment}; keys match ignoring case and spaces"),
]


def candidates(key: str, aliases: Mapping[str, str]) -> list[str]:
    """``key`` and every alias of it, normalised, key first (aliases in a stable order)."""
    k = normalise_key(key)
    return [k, *sorted(a for a, target in aliases.items() if target == k)]


def _lookup(column: str, key: str) -> pl.Expr:
    import polars as pl

    value = pl.col(column).str.json_path_match(f"$[{json.dumps(key, ensure_ascii=False)}]")
    return pl.when(value.str.strip_chars() != "").then(value)  # an empty value counts as missing


def tag_value(key: str, aliases: Mapping[str, str], column: str = TAGS) -> pl.Expr:
    """The first non-empty value of ``key`` or one of its aliases in a normalised tags column."""
    import polars as pl

    exprs = [_lookup(column, k) for k in candidates(key, aliases)]
    return exprs[0] if len(exprs) == 1 else pl.coalesce(exprs)


def found_key(tags: Mapping[str, str | None], key: str, aliases: Mapping[str, str]) -> tuple[str, str] | None:
    """(the key actually used, its value) for ``key`` in a normalised tags mapping, or None."""
    return found_in(tags, candidates(key, aliases))


def found_in(tags: Mapping[str, str | None], keys: Sequence[str]) -> tuple[str, str] | None:
    """(the first of ``keys`` with a non-empty value, that value), or None: :func:`found_key`
    with its :func:`candidates` worked out once by the caller."""
    for k in keys:
        v = tags.get(k)
        if v is not None and str(v).strip() != "":
            return k, str(v)
    return None


def parse(tags_json: str | None) -> dict[str, str | None]:
    """A tags JSON object (as stored in ``x_Tags``/``x_tags``) as a dict; {} for null or invalid."""
    if not tags_json:
        return {}
    try:
        obj = json.loads(tags_json)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def normalised_keys(keys: Sequence[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(normalise_key(k) for k in keys))
    if "" in out:
        raise ValueError("tag keys must not be empty")
    return out
