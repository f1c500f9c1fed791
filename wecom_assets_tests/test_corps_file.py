"""The corps file: each corp named once, its secret only named, a wrong file refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from wecom_assets.wecom.corps import Corp, CorpsFileError, load_corps
from wecom_assets.wecom.errors import WeComConfigError

GOOD = """\
- corp_id: ww0123456789abcdef
  secret_env: WECOM_SECRET_ACME
  name: 示例集团
- corp_id: ww_second
  secret_env: WECOM_SECRET_SECOND
  base_url: http://127.0.0.1:8000
  userids_case_sensitive: true
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "corps.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_corps_file_lists_every_corp_in_order(tmp_path: Path) -> None:
    corps = load_corps(_file(tmp_path, GOOD))
    assert [(c.corp_id, c.secret_env, c.label) for c in corps] == [
        ("ww0123456789abcdef", "WECOM_SECRET_ACME", "示例集团"),
        ("ww_second", "WECOM_SECRET_SECOND", "ww_second"),
    ]
    assert corps[1].base_url == "http://127.0.0.1:8000"
    assert (corps[0].userids_case_sensitive, corps[1].userids_case_sensitive) == (False, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD + "- corp_id: ww_second\n  secret_env: OTHER\n",
            r"line 8: corp_id ww_second is listed twice \(first on line 4\)",
        ),
        ("- corp_id: ww_a\n  secret: s3cr3t-value\n", r"line 2: a secret is written in the file"),
        (
            "- corp_id: ww_a\n  secret_env: Ab3dEf-xyz_pasted_secret\n",
            r"line 1: secret_env must be the name of an environment variable",
        ),
        ("- corp_id: ww_a\n", r"line 1: secret_env is missing"),
        ("- corp_id: ww_a\n  secret_env: S\n  colour: red\n", r"line 3: unknown field 'colour'"),
        ("corp_id: ww_a\n", r"expected a list of corps"),
        ("- corp_id: [unclosed\n", r"line \d+: not valid YAML"),
        (
            "- corp_id: ww_a\n  secret_env: S\n  base_url: qyapi.weixin.qq.com\n",
            r"line 1: base_url must start with http",
        ),
    ],
)
def test_a_wrong_file_is_refused_naming_the_line_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(CorpsFileError, match=message) as refused:
        load_corps(path)
    assert str(path) in str(refused.value)
    assert "s3cr3t-value" not in str(refused.value)


def test_a_missing_file_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(CorpsFileError, match=r"WECOM_CORPS_FILE .*cannot be read"):
        load_corps(tmp_path / "missing.yaml")


def test_a_corps_secret_comes_from_the_variable_it_names() -> None:
    corp = Corp("ww_a", "WECOM_SECRET_A")
    assert corp.secret({"WECOM_SECRET_A": " the-secret "}) == "the-secret"
    with pytest.raises(WeComConfigError, match=r"WECOM_SECRET_A is not set.*corp ww_a"):
        corp.secret({})
