"""The proxy settings (YAML file < environment < flags), validated when the app is built."""

from __future__ import annotations

import pytest

from promptguard.proxy.settings import load_settings
from promptguard.yamlutil import YamlError


# -- settings ------------------------------------------------------------------------------------------------
def test_settings_file_env_and_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMPTGUARD_STORE", raising=False)  # tests/conftest.py sets it for every test
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text("upstream: http://10.0.0.1:8000/v1/\nport: 9000\nworkers: 2\npolicy: pol.yaml\n"
                   "store: audit/a.sqlite\napi_keys:\n  - {name: a, key: k1, policy: strict.yaml}\n")
    s = load_settings(cfg)
    assert s.upstream == "http://10.0.0.1:8000/v1" and s.port == 9000 and s.workers == 2
    assert s.policy == tmp_path / "pol.yaml" and s.store == str(tmp_path / "audit/a.sqlite")
    assert s.api_keys[0].policy == tmp_path / "strict.yaml" and s.api_keys[0].matches("k1")
    monkeypatch.setenv("PROMPTGUARD_PORT", "9100")
    monkeypatch.setenv("PROMPTGUARD_UPSTREAM_API_KEY", "sk-env")
    s = load_settings(cfg)
    assert s.port == 9100 and s.upstream_api_key.get_secret_value() == "sk-env"
    assert load_settings(cfg, port=9200).port == 9200
    monkeypatch.setenv("PROMPTGUARD_CONFIG", str(cfg))
    assert load_settings().workers == 2


def test_settings_errors_name_the_setting_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("upstream: http://x/v1\n\nworkers: lots\n")
    with pytest.raises(YamlError, match=r"bad.yaml:3: workers"):
        load_settings(cfg)
    cfg.write_text("upstream: http://x/v1\nno_such_setting: 1\n")
    with pytest.raises(YamlError, match="no_such_setting"):
        load_settings(cfg)
    with pytest.raises(ValueError, match="upstream must be an http"):
        load_settings(upstream="ftp://x")
    with pytest.raises(ValueError, match="exactly one of"):
        load_settings(upstream="http://x/v1", api_keys=[{"name": "a"}])


def test_create_app_rejects_bad_config(tmp_path):
    from promptguard.proxy.app import create_app

    with pytest.raises(ValueError, match="no upstream"):
        create_app(load_settings())
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\ndetectors:\n  nonsense: {}\n")
    with pytest.raises(ValueError, match="unknown detector"):
        create_app(load_settings(upstream="http://127.0.0.1:1/v1", policy=bad))
