"""pullgate.yaml: defaults, every key, and errors with positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullgate.config import Config, ConfigError, load_config, parse_duration


def test_no_file_and_empty_file_give_the_defaults(tmp_path: Path) -> None:
    assert load_config(None) == Config()
    empty = tmp_path / "pullgate.yaml"
    empty.write_text("# nothing\n")
    config = load_config(empty)
    assert config == Config()
    assert config.listen == ("unix:///run/pullgate/pullgate.sock",)
    assert config.default_action == "deny" and config.unknown_namespace == "apply"
    assert config.cache.ttl == 600 and config.cache.failure_ttl == 30
    assert config.registry.timeout == 5 and config.registry.retries == 2
    assert config.notation.backend == "auto"
    assert config.cel.engine == "cel-python"


def test_every_key(tmp_path: Path) -> None:
    path = tmp_path / "pullgate.yaml"
    path.write_text(
        """
listen: ["unix:///tmp/p.sock", "tcp://127.0.0.1:9443"]
policies: /srv/policies
defaultAction: allow
unknownNamespace: skip
cache: {ttl: 1h30m, failureTtl: 0s, maxEntries: 5}
registry:
  insecure: ["localhost:5000"]
  dockerConfig: /etc/docker.json
  timeout: 1500ms
  retries: 0
notation: {backend: native, binary: /usr/bin/notation, timeout: 2s}
cel: {engine: cel-expr}
log: {format: text}
metrics: {address: "127.0.0.1:9464"}
"""
    )
    c = load_config(path)
    assert c.listen == ("unix:///tmp/p.sock", "tcp://127.0.0.1:9443")
    assert c.policies == "/srv/policies"
    assert (c.default_action, c.unknown_namespace) == ("allow", "skip")
    assert (c.cache.ttl, c.cache.failure_ttl, c.cache.max_entries) == (5400, 0, 5)
    assert c.registry.insecure == ("localhost:5000",)
    assert (c.registry.timeout, c.registry.retries) == (1.5, 0)
    assert (c.notation.backend, c.notation.binary, c.notation.timeout) == (
        "native",
        "/usr/bin/notation",
        2,
    )
    assert c.cel.engine == "cel-expr"
    assert (c.log_format, c.metrics_address) == ("text", "127.0.0.1:9464")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("defaultAction: alow\n", "1:16", "did you mean 'allow'"),
        ("listen: [http://x]\n", "1:10", "must start with unix:// or tcp://"),
        ("cache: {ttl: ten}\n", "1:14", "is not a duration"),
        ("cache: {tll: 1m}\n", "1:9", "unknown key 'tll' in cache; did you mean 'ttl'"),
        ("registry: {retries: two}\n", "1:21", "must be an integer"),
        ("polices: /x\n", "1:1", "did you mean 'policies'"),
        ("cel: {engine: cel-go}\n", "1:15", "cel.engine must be one of cel-python, cel-expr"),
        ("cel: {engin: cel-expr}\n", "1:7", "unknown key 'engin' in cel; did you mean 'engine'"),
        ("a: [\n", "2:1", "YAML syntax error"),
        ("---\nlisten: []\n---\nlisten: []\n", "4:1", "one YAML document"),
    ],
)
def test_errors_name_the_position(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = tmp_path / "pullgate.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    issues = [str(i) for i in info.value.issues]
    assert any(i.startswith(f"{path}:{where}: ") and message in i for i in issues), issues


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("10m", 600), ("1h30m", 5400), ("0s", 0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1d", "m", "-1s", "1 h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)
