"""LiteLLM configs that must load (issue 11, items 11 and 12): unknown providers skipped, distinct generated ids,
``include:`` files, entry-level rpm/tpm, object fallbacks, per-deployment ``num_retries``, ``region_name``,
prices, and one warning per key that is not read. Real YAML files, the public loader, the real CLI."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relaygate import reload
from relaygate.config import ConfigError, env, from_litellm, load_config, validate
from relaygate.config import litellm as rules


def write(directory: Path, name: str, text: str) -> str:
    p = directory / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return str(p)


def check_config(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relaygate.cli", "check-config", path],
                          capture_output=True, text=True, timeout=60)


# -- 11: unknown providers ----------------------------------------------------------------------------------

MIXED = """
    model_list:
      - model_name: claude
        litellm_params: {model: sagemaker/jumpstart-llama, api_key: sk-sagemaker-secret}
      - model_name: gpt
        litellm_params: {model: mock/echo}
      - model_name: mistral
        litellm_params: {model: mistralai/Mistral-7B}
"""


def test_an_unknown_provider_skips_only_that_deployment(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "c.yaml", MIXED))
    assert [d.model_name for d in cfg.deployments] == ["gpt"]
    assert cfg.deployments[0].where == "model_list[1]"
    assert len(cfg.skipped) == 2
    first, second = cfg.skipped
    assert first.startswith("model_list[0] (claude): deployment skipped") and "`sagemaker/jumpstart-llama`" in first
    assert second.startswith("model_list[2] (mistral):") and "`mistralai`" in second
    assert all(line in cfg.warnings for line in cfg.skipped)  # serve and reload print warnings
    assert "sk-sagemaker-secret" not in "\n".join(cfg.warnings)
    assert validate(cfg) == [] and reload.problems(cfg) == []


def test_check_config_prints_skipped_deployments_as_errors_and_exits_3(tmp_path: Path) -> None:
    p = write(tmp_path, "c.yaml", MIXED)
    r = check_config(p)
    assert r.returncode == 3, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "model_list[0] (claude)" in errors[0] and "model_list[2] (mistral)" in errors[1]
    assert "deployment skipped" not in r.stdout  # not printed a second time as a warning
    assert f"ok: {p}: 1 deployments in 1 model groups (gpt)" in r.stdout
    assert "starts with this config" in r.stdout


def test_reload_accepts_a_skipped_provider_like_startup(tmp_path: Path) -> None:
    p = write(tmp_path, "c.yaml", MIXED)
    cfg = reload.load_checked(p)  # SIGHUP and POST /config/reload check with this: no ConfigError
    assert [d.model_name for d in cfg.deployments] == ["gpt"]
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    assert reload.request_reload(p, str(runtime)) == 1  # the SIGHUP path bumps the generation


def test_a_config_whose_every_deployment_is_skipped_still_loads_and_says_so(tmp_path: Path) -> None:
    p = write(tmp_path, "c.yaml", """
        model_list:
          - model_name: a
            litellm_params: {model: sagemaker/x}
    """)
    cfg = reload.load_checked(p)
    assert cfg.deployments == []
    assert cfg.skipped[-1].startswith("no deployment is served: every model_list entry was skipped")
    r = check_config(p)
    assert r.returncode == 3 and "no deployment is served" in r.stderr
    empty = write(tmp_path, "empty.yaml", "model_list: []\n")
    assert load_config(empty).skipped == [] and check_config(empty).returncode == 0


def test_custom_llm_provider_names_the_provider(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "c.yaml", """
        model_list:
          - model_name: llama
            litellm_params: {model: meta-llama/Llama-3-8B, custom_llm_provider: hosted_vllm,
                             api_base: "http://127.0.0.1:1/v1"}
    """))
    d = cfg.deployments[0]
    assert (d.provider, d.upstream_model, d.model) == ("hosted_vllm", "meta-llama/Llama-3-8B",
                                                       "hosted_vllm/meta-llama/Llama-3-8B")
    assert "custom_llm_provider" not in d.extra and not cfg.skipped and not cfg.warnings


# -- 11: ids ------------------------------------------------------------------------------------------------


def test_identical_entries_get_distinct_ids_the_first_is_litellms(tmp_path: Path) -> None:
    p = write(tmp_path, "c.yaml", """
        model_list:
          - model_name: m
            litellm_params: {model: mock/echo, rpm: 10}
          - model_name: m
            litellm_params: {model: mock/echo, rpm: 10}
          - model_name: m
            litellm_params: {model: mock/echo, rpm: 10}
          - model_name: m
            litellm_params: {model: mock/echo, rpm: 10}
            model_info: {id: 7}
    """)
    cfg = load_config(p)
    litellm_id = hashlib.sha256(b"mmodelmock/echorpm10").hexdigest()  # Router._generate_model_id
    assert [d.id for d in cfg.deployments] == [litellm_id, f"{litellm_id}-2", f"{litellm_id}-3", "7"]
    assert validate(cfg) == []
    assert [d.id for d in load_config(p).deployments] == [d.id for d in cfg.deployments]  # stable


def test_litellm_id_spells_values_as_litellm_does() -> None:
    params = {"model": "openai/x", "temperature": 0.5, "stop": ["a"], "extra_body": {"k": 1}, "flag": True}
    blob = "gmodelopenai/xtemperature0.5stop['a']extra_body{\"k\": 1}flagTrue"
    assert rules.litellm_id("g", params) == hashlib.sha256(blob.encode()).hexdigest()


# -- 12: include --------------------------------------------------------------------------------------------


def test_include_merges_as_litellm_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    write(conf, "models/more.yaml", """
        model_list:
          - model_name: b
            litellm_params: {model: mock/echo}
            model_info: {mode: chat, owner: me}
        include: [models/last.yaml]
    """)
    write(conf, "models/last.yaml", """
        model_list:
          - model_name: c
            litellm_params: {model: mock/echo}
        litellm_settings: {num_retries: 4}
    """)
    main = write(conf, "config.yaml", """
        include: [models/more.yaml]
        model_list:
          - model_name: a
            litellm_params: {model: mock/echo}
        litellm_settings: {num_retries: 1, drop_params: true}
        router_settings: {allowed_fails: 2}
    """)
    monkeypatch.chdir(tmp_path)  # paths are relative to the main file, not the working directory
    cfg = load_config(main)
    assert [d.model_name for d in cfg.deployments] == ["a", "b", "c"]  # lists extend, in include order
    assert cfg.router.num_retries == 4  # other values replace the main file's (LiteLLM's merge)
    assert cfg.router.allowed_fails == 2
    assert [d.where for d in cfg.deployments] == ["model_list[0]", "models/more.yaml: model_list[0]",
                                                  "models/last.yaml: model_list[0]"]
    assert "models/more.yaml: model_list[0].model_info.owner: ignored" in cfg.warnings
    assert not any(w.startswith("include") for w in cfg.warnings)


def test_include_errors_name_the_file(tmp_path: Path) -> None:
    main = write(tmp_path, "config.yaml", "include: [nope.yaml]\n")
    with pytest.raises(ConfigError) as info:
        load_config(main)
    assert info.value.source == main and info.value.field == "include[0]"
    assert "included file not found" in str(info.value) and str(tmp_path / "nope.yaml") in str(info.value)

    with pytest.raises(ConfigError, match=r"include: expected a list of file paths"):
        load_config(write(tmp_path, "str.yaml", "include: models.yaml\n"))

    bad = write(tmp_path, "bad.yaml", """
        model_list:
          - model_name: ok
            litellm_params: {model: mock/echo}
          - model_name: m
            litellm_params: {model: mock/echo, rpm: lots}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "uses-bad.yaml", "include: [bad.yaml]\nmodel_list: []\n"))
    assert info.value.source == bad and info.value.field == "model_list[1].litellm_params.rpm"

    broken = write(tmp_path, "broken.yaml", "model_list: [\n")
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load_config(write(tmp_path, "uses-broken.yaml", "include: [broken.yaml]\n"))
    assert info.value.source == broken


def test_include_cycles_are_refused(tmp_path: Path) -> None:
    main = write(tmp_path, "config.yaml", "include: [a.yaml]\n")
    write(tmp_path, "a.yaml", "include: [b.yaml]\n")
    write(tmp_path, "b.yaml", "include: [config.yaml]\n")
    with pytest.raises(ConfigError) as info:
        load_config(main)
    assert info.value.source == str(tmp_path / "b.yaml")
    assert "include cycle: config.yaml -> a.yaml -> b.yaml -> config.yaml" in str(info.value)
    write(tmp_path, "self.yaml", "include: [self.yaml]\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_config(str(tmp_path / "self.yaml"))


def test_a_file_included_twice_is_merged_twice_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", "model_list: [{model_name: m, litellm_params: {model: mock/echo}}]\n")
    cfg = load_config(write(tmp_path, "c.yaml", "include: [m.yaml, m.yaml]\n"))
    assert len(cfg.deployments) == 2 and cfg.deployments[0].id != cfg.deployments[1].id
    assert any(w.startswith("include[1]: m.yaml is included more than once") for w in cfg.warnings)


# -- 12: entries --------------------------------------------------------------------------------------------


def test_entry_level_rpm_tpm_as_litellm_reads_them(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "c.yaml", """
        model_list:
          - model_name: a
            litellm_params: {model: mock/echo, rpm: 1, tpm: 2}
            rpm: 100
            tpm: 2000
          - model_name: b
            litellm_params: {model: mock/echo, tpm: 5}
            model_info: {rpm: 7, tpm: 8}
    """))
    a, b = cfg.deployments
    assert (a.rpm, a.tpm, b.rpm, b.tpm) == (100, 2000, 7, 5)
    assert not cfg.warnings


def test_per_deployment_num_retries_is_a_field(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "c.yaml", """
        model_list:
          - model_name: a
            litellm_params: {model: mock/echo, num_retries: 2}
    """))
    d = cfg.deployments[0]
    assert d.num_retries == 2 and "num_retries" not in d.extra and not cfg.warnings
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.num_retries"):
        load_config(write(tmp_path, "bad.yaml", "model_list: [{model_name: a, litellm_params: "
                                                 "{model: mock/echo, num_retries: many}}]\n"))


def test_region_name_is_not_a_provider_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config(write(tmp_path, "c.yaml", """
        model_list:
          - model_name: claude
            litellm_params: {model: bedrock/anthropic.claude-3-haiku, region_name: eu, api_key: k}
    """))
    d = cfg.deployments[0]
    assert "aws_region_name" not in d.extra  # LiteLLM's Bedrock reads aws_region_name only
    (w,) = cfg.warnings
    assert w.startswith("model_list[0].litellm_params.region_name: ignored (LiteLLM's label for region-based")


def test_prices_are_read_and_never_sent_upstream(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "c.yaml", """
        model_list:
          - model_name: a
            litellm_params:
              model: mock/echo
              input_cost_per_token: 1e-6
              output_cost_per_token: 0.000002
              cache_read_input_token_cost: 0
              temperature: 0.1
            model_info:
              input_cost_per_token: 0.5
              input_cost_per_second: 3
              output_cost_per_second: 4
              search_context_cost_per_query: {low: 0.01}
    """))
    d = cfg.deployments[0]
    assert d.costs == {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "cache_read_input_token_cost": 0.0,
                       "input_cost_per_second": 3.0, "output_cost_per_second": 4.0}
    assert d.extra == {"temperature": 0.1}  # what adapters may send: no price
    assert d.model_info["input_cost_per_token"] == 1e-6  # litellm_params win, as LiteLLM copies them over
    assert cfg.warnings == ["model_list[0].model_info.search_context_cost_per_query: ignored (not one price)"]
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.model_info\.output_cost_per_token: expected a price"):
        load_config(write(tmp_path, "bad.yaml", "model_list: [{model_name: a, litellm_params: {model: mock/echo},"
                                                 " model_info: {output_cost_per_token: cheap}}]\n"))


# -- 12: fallbacks ------------------------------------------------------------------------------------------


def test_object_fallbacks_become_their_model(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "c.yaml", """
        model_list: [{model_name: a, litellm_params: {model: mock/echo}}]
        router_settings:
          fallbacks:
            - a: ["b", {"model": "c", "messages": [{"role": "user", "content": "shorter"}]}]
          default_fallbacks: [{"model": "d"}]
        litellm_settings:
          context_window_fallbacks: ["big", {"model": "bigger", "temperature": 0}]
    """))
    r = cfg.router
    assert r.fallbacks == [{"a": ["b", "c"]}]
    assert r.context_window_fallbacks == [{"*": ["big", "bigger"]}]  # LiteLLM's non-standard list: any group
    assert r.default_fallbacks == ["d"]
    assert [w.split(" (")[0] for w in cfg.warnings] == [
        "litellm_settings.context_window_fallbacks[1].temperature: ignored",
        "router_settings.fallbacks[0].a[1].messages: ignored",
    ]
    assert "per-fallback request overrides are not supported yet" in cfg.warnings[0]
    with pytest.raises(ConfigError, match=r"router_settings\.fallbacks\[0\]\.a\[0\]\.model"):
        from_litellm({"router_settings": {"fallbacks": [{"a": [{"messages": []}]}]}}, "c.yaml")


# -- 12: every key that is not read, once, with its path -----------------------------------------------------


def test_every_ignored_key_is_reported_once_with_its_path(tmp_path: Path) -> None:
    p = write(tmp_path, "c.yaml", """
        model_list:
          - model_name: a
            litellm_params: {model: openai/gpt-4o, api_key: sk-do-not-print, top_k: 3, tags: [x],
                             temperature: 0.2, extra_headers: {X-A: b}}
            model_info: {id: a1, mode: chat, base_model: gpt-4o, supports_vision: true, team_id: t1}
            description: first
          - model_name: c
            litellm_params: {model: anthropic/claude, api_key: k, top_k: 3}
        router_settings: {allowed_fails: 1, foo: 1}
        litellm_settings: {drop_params: true, callbacks: [x]}
        general_settings: {master_key: sk-1, alerting: [ms_teams], proxy_config_reload_interval_seconds: 10}
        relaygate_keys: [{key: sk-vk, models: [a], budget: 3}]
        relaygate_settings: {port: 4001, turbo: true}
        guardrails: []
    """)
    cfg = load_config(p)
    expected = [
        "guardrails: ignored",
        "model_list[0].description: ignored",
        "model_list[0].litellm_params.top_k: ignored",  # the openai adapter does not send top_k
        "model_list[0].model_info.team_id: ignored",
        "relaygate_keys[0].budget: ignored",
        "litellm_settings.callbacks[0]: callback 'x' is not supported: ignored",
        "router_settings.foo: ignored",
        "general_settings.alerting[0]: 'ms_teams' is not supported (slack, webhook, pagerduty, email): ignored",
        "general_settings.proxy_config_reload_interval_seconds: ignored (with store_model_in_db, stored models and "
        "settings reach every worker within about a second of a write, through the store's change poll)",
        "relaygate_settings.turbo: ignored",
    ]
    assert sorted(cfg.warnings) == sorted(expected)  # anthropic's top_k is read: no warning for model_list[1]
    r = check_config(p)
    assert r.returncode == 0, r.stderr
    printed = [line.removeprefix(f"warning: {p}: ") for line in r.stdout.splitlines() if line.startswith("warning:")]
    assert sorted(printed) == sorted(expected)
    assert "sk-do-not-print" not in r.stdout + r.stderr


# -- the tables stay in step with the adapters ---------------------------------------------------------------


def test_request_defaults_and_provider_tables_match_the_adapters() -> None:
    from relaygate.providers.openai import REQUEST_DEFAULTS

    assert rules.REQUEST_DEFAULTS == REQUEST_DEFAULTS
    assert set(rules.PROVIDER_PARAMS) == env.PROVIDERS


def test_every_param_an_adapter_reads_is_in_the_table() -> None:
    """A new ``litellm_params`` key an adapter reads must be added to ``config.litellm.PROVIDER_PARAMS``,
    else check-config would call it ignored."""
    read: set[str] = set()
    for path in (Path(__file__).parents[2] / "src/relaygate/providers").glob("*.py"):
        text = path.read_text()
        read.update(re.findall(r"\b(?:x|extra|dep\.extra)\.get\(\"([a-z_]+)\"", text))
        read.update(re.findall(r"_number\(x, \"([a-z_]+)\"", text))
        for names in re.findall(r"(?:_PASS_PARAMS|EMBED_PARAMS) = \(([^)]*)\)", text):
            read.update(re.findall(r"\"([a-z_]+)\"", names))
        for cond in re.findall(r"for k, v in (?:x|extra|dep\.extra)\.items\(\)\s*if ([^}]*)\}", text):
            read.update(re.findall(r"\"([a-z_]+)\"", cond))
    known = set().union(*rules.PROVIDER_PARAMS.values())
    assert read and read <= known, read - known


def test_post_config_reload_serves_the_others_when_a_provider_is_unknown(tmp_path: Path) -> None:
    import asyncio

    from relaygate.asgi import Gateway
    from tests.asgi.conftest import call

    auth = {"Authorization": "Bearer sk-reload"}
    head = "general_settings: {master_key: sk-reload}\nmodel_list:\n  - {model_name: a, litellm_params: {model: mock/echo}}\n"
    p = write(tmp_path, "c.yaml", head)
    gw = Gateway(load_config(p), config_path=p, runtime_dir=None)

    async def main() -> None:
        Path(p).write_text(head + "  - {model_name: s, litellm_params: {model: sagemaker/x}}\n"
                                  "  - {model_name: b, litellm_params: {model: mock/echo}}\n")
        r = await call(gw, "POST", "/config/reload", headers=auth)
        assert r.status == 200, r.body
        models = await call(gw, "GET", "/v1/models", headers=auth)
        assert sorted(m["id"] for m in models.json()["data"]) == ["a", "b"]

    asyncio.run(main())


def test_guardrails_are_refused_unless_acknowledged(tmp_path: Path) -> None:
    """LiteLLM's guardrails (PII masking, prompt-injection checks ...) are not run: a config that has some
    would send every request unchecked, so it does not start unless the operator says so."""
    text = ("model_list:\n  - model_name: m\n    litellm_params: {model: mock/echo}\n"
            "guardrails:\n  - guardrail_name: pii-mask\n    litellm_params: {guardrail: presidio, mode: pre_call, "
            "default_on: true}\n")
    p = tmp_path / "config.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(p))
    assert info.value.field == "guardrails" and "pii-mask" in str(info.value)
    p.write_text(text + "relaygate_settings: {ignore_guardrails: true}\n")
    cfg = load_config(str(p))
    assert cfg.server.ignore_guardrails and "guardrails: ignored" in cfg.warnings


def test_litellms_request_timeout_and_json_logs_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from relaygate.logs import JsonFormatter, make_formatter

    p = tmp_path / "config.yaml"
    p.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: mock/echo}\n")
    monkeypatch.setenv("REQUEST_TIMEOUT", "42")
    assert load_config(str(p)).server.request_timeout == 42.0
    p.write_text(p.read_text() + "litellm_settings: {request_timeout: 5}\n")
    assert load_config(str(p)).server.request_timeout == 5.0  # the file wins
    monkeypatch.setenv("REQUEST_TIMEOUT", "soon")
    assert load_config(str(p)).server.request_timeout == 5.0  # the file sets it: the variable is not read
    p.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: mock/echo}\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(p))
    assert info.value.field == "REQUEST_TIMEOUT"
    monkeypatch.delenv("RELAYGATE_JSON_LOGS", raising=False)
    monkeypatch.setenv("JSON_LOGS", "True")
    assert isinstance(make_formatter(), JsonFormatter)
    monkeypatch.setenv("JSON_LOGS", "false")
    assert not isinstance(make_formatter(), JsonFormatter)


def test_a_null_setting_is_an_unset_one(tmp_path: Path) -> None:
    """LiteLLM reads ``key: null`` (a templated config's empty value) as not set; so does relaygate, in the three
    sections LiteLLM reads that way, instead of refusing the type."""
    path = tmp_path / "c.yaml"
    path.write_text("model_list: []\nlitellm_settings:\n  fallbacks: null\n  json_logs: null\n  cache:\n"
                    "router_settings:\n  num_retries: null\n  allowed_fails: ~\ngeneral_settings:\n  master_key:\n"
                    "  disable_end_user_cost_tracking: null\n")
    cfg = load_config(str(path))
    assert cfg.general.master_key is None and cfg.cache is None and not cfg.warnings
    (tmp_path / "empty.yaml").write_text("model_list: []\n")
    defaults = load_config(str(tmp_path / "empty.yaml"))
    assert cfg.router == defaults.router and cfg.general == defaults.general and cfg.observe == defaults.observe
