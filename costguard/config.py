"""The config file: pydantic models (``extra="forbid"``), ``${ENV}`` interpolation, ``*_file`` secrets.

Every error names the file, the line and the key path (``costguard.yaml:7: providers[0].paths: …``).
Relative paths in the file are relative to the file's own folder, so a config works from any cwd.
"""

from __future__ import annotations

import os
from pathlib import Path
from datetime import date
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from costguard import yamlsrc
from costguard.errors import ConfigError, ConfigIssue
from costguard.logs import add_known_secrets
from costguard.notify import RECEIVERS
from costguard.notify.duration import Duration
from costguard.notify.routing import field_name
from costguard.providers import PROVIDERS, DEFAULT_EARLIEST
from costguard.registry import Registry


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StateConfig(_Model):
    url: SecretStr = SecretStr("sqlite:///.costguard/state.db")
    lake: str = ".costguard/lake"


class IngestConfig(_Model):
    restate_days: int = Field(3, ge=0, le=62, description="trailing days re-pulled every cycle (bills are restated)")
    month_to_date: bool = Field(True, description="also re-pull every day of the current month")
    backfill_days: int = Field(90, ge=1, le=3660, description="how far back a cloud API provider pulls on first run")
    keep_rows: bool = Field(True, description="keep a normalised copy of every row in the lake (false: daily rollups only)")
    earliest_date: date = Field(DEFAULT_EARLIEST, description="rows dated before this day are rejected (as are rows more than a year after the as-of day)")


def _union(registry: Registry[Any]) -> Any:
    """The registered config models as one pydantic union, told apart by ``type``."""
    classes = [cls for _name, cls in registry.items()]
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[tuple(classes)], Field(discriminator="type")]  # noqa: UP007 (built at runtime)


AnyProvider = _union(PROVIDERS)
AnyReceiver = _union(RECEIVERS)


class RouteConfig(_Model):
    """One route (Alertmanager style): findings matching ``match``/``match_re`` go to ``receiver``."""

    receiver: str
    match: dict[str, str | list[str]] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    continue_: bool = Field(False, alias="continue")
    group_by: list[str] | None = None
    repeat_interval: Duration | None = None

    @field_validator("match", "match_re")
    @classmethod
    def _match_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return {field_name(k): val for k, val in v.items()}

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for k, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"match_re.{k}: {pattern!r} is not a regular expression: {e}") from None
        return v

    @field_validator("group_by")
    @classmethod
    def _group_keys(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [field_name(k) for k in v]


class RetryConfig(_Model):
    attempts: int = Field(5, ge=1, le=50, description="tries per message, the first included")
    initial_backoff: Duration = Field(timedelta(seconds=1), description="wait before the second try (then doubling, with jitter)")
    max_backoff: Duration = Field(timedelta(seconds=30), description="longest single wait")
    max_elapsed: Duration = Field(timedelta(minutes=2), description="time budget of one message, waits included")


class NotifyConfig(_Model):
    receivers: dict[str, AnyReceiver] = Field(default_factory=lambda: {"console": RECEIVERS.get("console")()})
    routes: list[RouteConfig] = Field(default_factory=list)
    mode: Literal["send", "shadow"] = Field("send", description="shadow: write messages to shadow_path instead of sending")
    shadow_path: str = "costguard-shadow.jsonl"
    repeat_interval: Duration = Field(timedelta(days=7), description="re-send a still-open finding this often")
    exceptions: str | None = Field(None, description="exceptions file (reviewed like code)")
    retry: RetryConfig = RetryConfig()
    deadline: Duration = Field(timedelta(minutes=10), description="time budget of the whole delivery stage of a cycle")


class ScheduleConfig(_Model):
    cycle: str = "0 6 * * *"
    digest: str = "0 8 * * MON"
    timezone: str = "UTC"


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)


class DigestConfig(_Model):
    metric: Literal["BilledCost", "EffectiveCost", "ListCost"] = Field(
        "BilledCost", description="the cost every digest amount sums (the same default as `costguard costs`)")
    archive: str = Field(".costguard/digests", description="folder where the scheduled digest writes its HTML, charts and JSON")
    teams: bool = Field(True, description="the scheduled digest also makes one digest per owner team with spend or findings")
    top: int = Field(5, ge=1, le=20, description="movers listed")
    settle_hours: int = Field(24, ge=0, le=240, description="a day read sooner than this after it ended may still be arriving: said, and not compared (0: trust every stored day)")
    link: str | None = Field(None, description="URL the archive folder is served at; chat summaries link to the full digest")
    receivers: list[str] = Field(default_factory=list, description="receivers (notify.receivers: email, slack or teams) that get the organisation's digest; teams' digests go to the receivers each team names in owners.yaml")


class Config(_Model):
    state: StateConfig = StateConfig()
    ingest: IngestConfig = IngestConfig()
    providers: list[AnyProvider] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=lambda: ["rules/"])
    owners: str | None = None
    notify: NotifyConfig = NotifyConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    server: ServerConfig = ServerConfig()
    catalog: list[str] = Field(default_factory=list, description="price catalogue CSV files (other clouds, negotiated "
                               "prices) layered over the bundled AWS list prices; relative to this file")
    digest: DigestConfig = DigestConfig()

    @field_validator("providers")
    @classmethod
    def _unique_names(cls, v: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for p in v:
            if p.name in seen:
                raise ValueError(f"provider name {p.name!r} is used twice; names must be unique")
            seen.add(p.name)
        return v


class LoadedConfig:
    """A validated config plus where it came from (for resolving relative paths and errors)."""

    def __init__(self, config: Config, path: Path, source: yamlsrc.Sourced) -> None:
        self.config = config
        self.path = path
        self.base_dir = path.parent
        self.source = source

    def resolve(self, p: str) -> str:
        """Resolve a local path relative to the config file; URIs (s3://, gs://, …) unchanged."""
        if "://" in p:
            return p
        q = Path(os.path.expanduser(p))
        return str(q if q.is_absolute() else self.base_dir / q)

    def state_url(self) -> str:
        url = self.config.state.url.get_secret_value()
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
            return prefix + str((self.base_dir / url[len(prefix):]).resolve())
        return url

    def line(self, *path: str | int) -> int | None:
        return self.source.line(path)


def _read_secret_files(src: yamlsrc.Sourced) -> list[ConfigIssue]:
    """Replace every ``<key>_file: PATH`` with ``<key>: <contents of PATH>`` (a mounted secret).

    The contents (surrounding whitespace stripped) are recorded as coming from a ``"file"``."""
    issues: list[ConfigIssue] = []

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            for k in list(node):
                v = node[k]
                if isinstance(k, str) and k.endswith("_file") and isinstance(v, str):
                    target = k[: -len("_file")]
                    kp = path + (k,)
                    if target in node:
                        issues.append(ConfigIssue(src.file, src.line(kp), yamlsrc.dotted(kp), f"set either {target} or {k}, not both"))
                        continue
                    fp = Path(os.path.expanduser(v))
                    if not fp.is_absolute():
                        fp = Path(src.file).parent / fp
                    try:
                        node[target] = fp.read_text(encoding="utf-8").strip()
                    except OSError as e:
                        issue = ConfigIssue(src.file, src.line(kp), yamlsrc.dotted(kp), f"cannot read secret file {v}: {e.strerror or e}")
                        issues.append(src.redact(issue, kp))
                        continue
                    del node[k]
                    tp = path + (target,)
                    src.lines[tp] = src.line(kp) or 0
                    src.origins[tp] = "file"
                    src.hidden[tp] = (node[target],)
                else:
                    walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))

    walk(src.data, ())
    return issues


def _holds_no_password(url: str) -> bool:
    """``sqlite:///state.db`` or ``postgresql://user@host/db``: nothing secret in it."""
    parts = urlsplit(url)
    return parts.password is None and "password" not in parts.query.lower()


# Secret fields whose value is not secret when it holds no password (a SQLite path).
_SECRET_UNLESS_NO_PASSWORD = {("state", "url")}


def literal_secrets(model: BaseModel, src: yamlsrc.Sourced, prefix: tuple[str | int, ...] = ()) -> list[ConfigIssue]:
    """Every ``SecretStr`` in ``model`` whose value is written in the file itself (not ``${ENV}``, not ``<key>_file``).

    ``prefix`` is where ``model`` sits in ``src``. Values left at their defaults are not in the file and
    pass. The issues never contain the value."""
    issues: list[ConfigIssue] = []

    def walk(value: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(value, SecretStr):
            if path not in src.lines or src.origin(path) != "literal":
                return
            if path in _SECRET_UNLESS_NO_PASSWORD and _holds_no_password(value.get_secret_value()):
                return
            name = path[-1]
            issues.append(ConfigIssue(
                src.file, src.line(path), yamlsrc.dotted(path),
                f"this is a secret: set it with ${{ENV_VAR}} or {name}_file: PATH, not in the config file",
            ))
        elif isinstance(value, BaseModel):
            for name, f in type(value).model_fields.items():
                walk(getattr(value, name), path + (f.alias or name,))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, path + (k,))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, path + (i,))

    walk(model, tuple(prefix))
    return issues


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read, interpolate and validate a config file. Raises ConfigError with file:line issues.

    Secrets (``SecretStr`` fields) must come from ``${ENV}`` or ``<key>_file``, not from the file."""
    p = Path(path)
    src = yamlsrc.load(p)
    if src.data is None:
        raise ConfigError.single(str(p), None, "", "the config file is empty; `costguard demo` writes a working one to start from")
    if not isinstance(src.data, dict):
        raise ConfigError.single(str(p), 1, "", "the config file must be a YAML mapping (key: value)")
    issues = _read_secret_files(src)
    for i, prov in enumerate(src.data.get("providers") or []):
        if isinstance(prov, dict) and prov.get("type") not in PROVIDERS:
            tp = ("providers", i, "type")
            issue = ConfigIssue(
                str(p),
                src.line(tp),
                f"providers[{i}].type",
                f"unknown provider type {prov.get('type')!r}; this version supports: {', '.join(PROVIDERS.names())}",
            )
            issues.append(src.redact(issue, tp))
    if issues:
        raise ConfigError(issues)
    try:
        cfg = Config.model_validate(src.data)
    except ValidationError as e:
        raise ConfigError(yamlsrc.issues_from_validation(e, src)) from None
    issues = literal_secrets(cfg, src)
    if issues:
        raise ConfigError(issues)
    add_known_secrets(secret_values(cfg))
    return LoadedConfig(cfg, p, src)


def secret_values(model: Any) -> list[str]:
    """Every ``SecretStr`` value in a config (so logs, errors and the state store can hide them)."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, SecretStr):
            out.append(v.get_secret_value())
        elif isinstance(v, BaseModel):
            for name in type(v).model_fields:
                walk(getattr(v, name))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(model)
    return [s for s in out if not s.startswith("sqlite:")]


def config_path(explicit: str | None) -> Path:
    """``-c FILE`` or ``$COSTGUARD_CONFIG``; a usage error when neither is given."""
    value = explicit or os.environ.get("COSTGUARD_CONFIG")
    if not value:
        raise ConfigError.single("<command line>", None, "-c", "no config file: pass -c FILE or set COSTGUARD_CONFIG")
    return Path(value)
