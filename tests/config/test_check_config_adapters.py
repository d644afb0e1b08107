"""``check-config`` (and ``serve``, before any worker starts) build every concrete deployment's adapter once,
so a deployment that cannot work is reported with its entry, not discovered as a 500 on each request."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.cli import main


@pytest.mark.parametrize("params,says", [
    ("{model: azure/gpt4}", "api_base is required"),
    ("{model: vertex_ai/gemini-1.5-pro, vertex_project: p, vertex_credentials: '{\"client_email\": \"a@b.c\"}'}",
     "lack private_key"),
    ("{model: gemini/../../x, api_key: k1234567}", "model"),
])
def test_check_config_reports_a_deployment_that_cannot_work(tmp_path: Path, params: str, says: str,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"model_list:\n  - model_name: bad\n    litellm_params: {params}\n"
                   "  - model_name: good\n    litellm_params: {model: mock/echo}\n")
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "model_list[0] (bad)" in err and says in err, err


def test_wildcards_are_not_built_ahead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("model_list:\n  - model_name: '*'\n    litellm_params: {model: 'gemini/*', api_key: k1234567}\n")
    assert main(["check-config", str(cfg)]) == 0, capsys.readouterr().err
