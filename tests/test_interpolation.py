"""``${ENV}`` interpolation into parsed values, secret origins, and the empty config file.

Real files in tmp_path, the real loaders; the environment is set with monkeypatch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from costguard import yamlsrc
from costguard.config import literal_secrets, load_config
from costguard.errors import ConfigError

from conftest import write_config

# Values that broke (or silently changed) when ${ENV} was pasted into the YAML text before parsing.
AWKWARD = [
    "ab #c",
    "*abc",
    "&anchor x",
    "s3cr#t: x",
    "it's \"quoted\" 'twice'",
    "two\nlines\n",
    "[not, a, list]",
    "{a: b}",
    "- item",
    "!!int 3",
    "|",
    "  padded  ",
    "%TAG",
    "@at `tick`",
    "${OTHER}",  # a value is never interpolated again
    "$${X}",
]


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return e.value


@pytest.mark.parametrize("value", AWKWARD)
def test_substituted_values_arrive_verbatim(tmp_path, monkeypatch, value):
    monkeypatch.setenv("V", value)
    monkeypatch.setenv("OTHER", "expanded-twice")
    cfg = write_config(tmp_path, """
        state:
          lake: ${V}
        providers:
          - name: a
            type: focus
            paths:
              - "pre ${V} post"
              - ${V}
            storage_options: {k: "${V}"}
        rules: []
        """)
    loaded = load_config(cfg)
    assert loaded.config.state.lake == value
    assert loaded.config.providers[0].paths == [f"pre {value} post", value]
    assert loaded.config.providers[0].storage_options == {"k": value}


def test_exact_reference_stays_a_string_and_the_model_converts_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("KEEP", "false")
    cfg = write_config(tmp_path, """
        ingest: {keep_rows: "${KEEP}"}
        server:
          port: ${PORT}
        rules: []
        """)
    assert yamlsrc.load(cfg).data["server"]["port"] == "9999"
    loaded = load_config(cfg)
    assert loaded.config.server.port == 9999 and loaded.config.ingest.keep_rows is False


def test_defaults_escapes_and_empty_values(tmp_path, monkeypatch):
    monkeypatch.delenv("UNSET", raising=False)
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.setenv("X", "x")
    src = yamlsrc.load(write_config(tmp_path, """
        a: "${UNSET:-fall back # in quotes}"
        b: ${UNSET:-}
        c: $${UNSET} and $${X:-d}
        d: $${X}${X}$$
        e: ${EMPTY:-used only when unset}
        f: cost $5 and $x
        g: ${X:-d}
        """))
    assert src.data == {
        "a": "fall back # in quotes",
        "b": "",
        "c": "${UNSET} and ${X:-d}",
        "d": "${X}x$$",
        "e": "",
        "f": "cost $5 and $x",
        "g": "x",
    }


def test_unset_variable_names_file_line_and_key_path(tmp_path, monkeypatch):
    for name in ("NOPE", "ALSO_NOPE", "MISSING_IN_BLOCK"):
        monkeypatch.delenv(name, raising=False)
    cfg = write_config(tmp_path, """
        # a comment with ${NOT_A_REFERENCE}: comments are gone after parsing
        providers:
          - name: a
            type: focus
            paths: [x, "${NOPE}"]
            storage_options:
              region: ${ALSO_NOPE}
        notify:
          receivers:
            console:
              type: console
              group_by: |
                first line
                second ${MISSING_IN_BLOCK}
        rules: []
        """)
    issues = [str(i) for i in _error(cfg).issues]
    assert issues == [
        f"{cfg}:5: providers[0].paths[1]: environment variable ${{NOPE}} is not set (and has no :-default)",
        f"{cfg}:7: providers[0].storage_options.region: environment variable ${{ALSO_NOPE}} is not set (and has no :-default)",
        f"{cfg}:14: notify.receivers.console.group_by: environment variable ${{MISSING_IN_BLOCK}} is not set (and has no :-default)",
    ]


def test_bad_references_and_keys_are_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("K", "k")
    monkeypatch.delenv("A", raising=False)
    monkeypatch.delenv("B", raising=False)
    cfg = write_config(tmp_path, """
        state:
          lake: ${lower-case}
          url: ${1ABC}
        storage:
          ${K}: 1
        server: {host: "${A:-${B}}"}
        """)
    issues = _error(cfg).issues
    assert [(i.line, i.key) for i in issues][:3] == [(2, "state.lake"), (3, "state.url"), (5, "storage.${K}")]
    assert all("not a valid reference" in i.message for i in issues[:2])
    assert "in a key is not supported" in issues[2].message
    assert (issues[3].line, issues[3].key) == (6, "server.host") and "not a valid reference" in issues[3].message


def test_unquoted_reference_in_flow_collection_gets_a_hint(tmp_path):
    cfg = write_config(tmp_path, """
        rules: []
        storage_options: {region: ${REGION}}
        """)
    (issue,) = _error(cfg).issues
    assert issue.line == 2 and "invalid YAML" in issue.message and 'in quotes: "${VAR}"' in issue.message


def test_no_error_text_contains_a_substituted_value(tmp_path, monkeypatch):
    secret = "pw-SECRET-1 #c"
    monkeypatch.setenv("S", secret)
    (tmp_path / "port").write_text("pw-FILE-SECRET-2\n")
    cfg = write_config(tmp_path, """
        providers:
          - {name: "${S}", type: focus, paths: [x]}
          - {name: "${S}", type: focus, paths: [y]}
        server: {host: "${S}", port_file: port}
        ingest: {restate_days: "${S}"}
        rules: []
        """)
    text = str(_error(cfg))
    assert "providers[0].name" in text and "server.port" in text and "ingest.restate_days" in text
    assert "pw-SECRET-1" not in text and "pw-FILE-SECRET-2" not in text

    cfg = write_config(tmp_path, """
        providers:
          - {name: a, type: "${S}"}
        """)
    (issue,) = _error(cfg).issues
    assert issue.key == "providers[0].type" and "unknown provider type '***'" in issue.message and secret not in str(issue)

    monkeypatch.setenv("N", "name-SECRET-9")  # a valid name, so the model's own check runs and names it
    cfg = write_config(tmp_path, """
        providers:
          - {name: "${N}", type: focus, paths: [x]}
          - {name: "${N}", type: focus, paths: [y]}
        rules: []
        """)
    (issue,) = _error(cfg).issues
    assert issue.key == "providers" and "provider name '***' is used twice" in issue.message


@pytest.mark.parametrize("secret", ["*abc", "ab #c", "s3cr#t: x", "x\ny: [", "'\"}"])
def test_a_secret_that_used_to_break_the_yaml_now_loads_and_never_shows(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("PGPASSWORD", secret)
    cfg = write_config(tmp_path, """
        state:
          url: "postgresql+psycopg://cg:${PGPASSWORD}@db/costguard"
        rules: []
        oops: 1
        """)
    (issue,) = _error(cfg).issues
    assert str(issue).startswith(f"{cfg}:4: oops: unknown key") and secret not in str(issue)
    cfg.write_text(cfg.read_text().replace("oops: 1\n", ""))
    assert load_config(cfg).config.state.url.get_secret_value() == f"postgresql+psycopg://cg:{secret}@db/costguard"


def test_origin_of_every_value(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKE", "lake")
    monkeypatch.delenv("UNSET", raising=False)
    (tmp_path / "db-url").write_text("sqlite:///from-file.db\n")
    cfg = write_config(tmp_path, """
        state:
          url_file: db-url
          lake: ${LAKE}
        server:
          host: ${UNSET:-0.0.0.0}
          port: 1
        rules: []
        """)
    src = load_config(cfg).source
    assert src.origin(("state", "url")) == "file"
    assert src.origin(("state", "lake")) == "env"
    assert src.origin(("server", "host")) == "literal"  # a default is written in the file
    assert src.origin(("server", "port")) == "literal"
    assert src.origin(("server",)) == "literal"
    assert src.line(("state", "url")) == 2
    assert "from-file" not in repr(src)


@pytest.mark.parametrize(
    "url, env",
    [
        ('"${DB_URL}"', {"DB_URL": "postgresql://cg:pw-SECRET-3@db/x"}),
        ('"postgresql+psycopg://cg:${PGPASSWORD}@db/x"', {"PGPASSWORD": "pw-SECRET-3"}),
        ("sqlite:///state.db", {}),
        ("postgresql://cg@db/x", {}),  # no password: not a secret
    ],
)
def test_state_url_from_env_or_without_password_is_accepted(tmp_path, monkeypatch, url, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = write_config(tmp_path, f"state:\n  url: {url}\nrules: []\n")
    assert load_config(cfg).config.state.url.get_secret_value()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://cg:pw-SECRET-3@db/x",
        "postgresql://db/x?password=pw-SECRET-3",
        "${DB_URL_UNSET:-postgresql://cg:pw-SECRET-3@db/x}",  # the default is written in the file
    ],
)
def test_literal_password_in_state_url_is_refused(tmp_path, monkeypatch, url):
    monkeypatch.delenv("DB_URL_UNSET", raising=False)
    cfg = write_config(tmp_path, f"rules: []\nstate:\n  url: \"{url}\"\n")
    err = _error(cfg)
    (issue,) = err.issues
    assert (issue.file, issue.line, issue.key) == (str(cfg), 3, "state.url")
    assert "is a secret" in issue.message and "${ENV_VAR}" in issue.message and "url_file" in issue.message
    assert "pw-SECRET-3" not in str(err)


class _Hook(BaseModel):
    url: SecretStr
    token: SecretStr | None = None
    channel: str = "#finops"


class _Receivers(BaseModel):
    hooks: dict[str, _Hook]
    backups: list[_Hook] = []


def test_literal_secrets_walks_nested_models_under_a_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "xoxb-SECRET-4")
    (tmp_path / "backup-url").write_text("https://hooks.example/SECRET-5\n")
    cfg = write_config(tmp_path, """
        notify:
          receivers:
            hooks:
              slack:
                url: https://hooks.example/SECRET-6
                token: ${TOKEN}
              teams:
                url: "${TOKEN}"
                token: literal-SECRET-7
            backups:
              - url_file: backup-url
              - {url: https://hooks.example/SECRET-8}
        """)
    from costguard.config import _read_secret_files

    src = yamlsrc.load(cfg)
    assert _read_secret_files(src) == []
    prefix = ("notify", "receivers")
    model = _Receivers.model_validate(src.sub(prefix).data)
    issues = literal_secrets(model, src, prefix)
    assert [(i.line, i.key) for i in issues] == [
        (5, "notify.receivers.hooks.slack.url"),
        (9, "notify.receivers.hooks.teams.token"),
        (12, "notify.receivers.backups[1].url"),
    ]
    assert "token_file" in issues[1].message
    assert "SECRET" not in "\n".join(str(i) for i in issues)


@pytest.mark.parametrize("body", ["", "\n  \n", "# only a comment\n# and another\n", "---\n"])
def test_empty_config_file_is_an_error(tmp_path, body):
    cfg = tmp_path / "costguard.yaml"
    cfg.write_text(body)
    (issue,) = _error(cfg).issues
    assert str(issue).startswith(f"{cfg}: the config file is empty") and "costguard demo" in issue.message


def test_empty_config_fails_validate(cli, tmp_path):
    cfg = tmp_path / "costguard.yaml"
    cfg.write_text("")
    r = cli("validate", "-c", cfg, expect=2)
    assert "the config file is empty" in r.stderr and "OK" not in r.stdout
