"""The corps file: one entry per WeCom corp a deployment syncs, secrets named, never written.

Service providers (代开发 apps) and groups with a corp per subsidiary sync many corps from one
code location. Each corp is an entry of a YAML list::

    - corp_id: ww0123456789abcdef     # the partition key
      secret_env: WECOM_SECRET_ACME   # env var that holds this corp's secret
      name: 示例集团                   # optional label
      base_url: https://qyapi.weixin.qq.com   # optional

A wrong file is refused whole, with the line and what is wrong: a half-loaded list would sync
some corps and silently drop others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wecom_assets.wecom.errors import WeComConfigError

# Upper case, as environment variables are named by convention: a pasted secret is not.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_FIELDS = ("corp_id", "secret_env", "name", "base_url", "userids_case_sensitive")


class CorpsFileError(WeComConfigError):
    """The corps file cannot be used; the message names the file, the line and the problem."""


@dataclass(frozen=True, slots=True)
class Corp:
    """One corp of the corps file.

    Attributes:
        corp_id: Corp id (``ww...``); the partition key and the ``corp_id`` of its rows.
        secret_env: Name of the environment variable holding the app secret.
        name: Label shown in the UI; the corp id when not given.
        base_url: API root for this corp; empty means the deployment's.
        userids_case_sensitive: Service-provider apps (代开发) receive encrypted userids that are
            case-sensitive; self-built apps' userids are not (the default).
    """

    corp_id: str
    secret_env: str
    name: str = ""
    base_url: str = ""
    userids_case_sensitive: bool = False
    line: int = field(default=0, compare=False)

    @property
    def label(self) -> str:
        """The name to show for the corp."""
        return self.name or self.corp_id

    def secret(self, environ: Mapping[str, str]) -> str:
        """The corp's secret from ``secret_env``.

        Raises:
            WeComConfigError: the variable is not set; the message names it and the corp.
        """
        value = environ.get(self.secret_env, "").strip()
        if not value:
            raise WeComConfigError(
                f"{self.secret_env} is not set: it holds the secret of corp {self.corp_id} "
                "(secret_env in the corps file)"
            )
        return value


def load_corps(path: Path) -> tuple[Corp, ...]:
    """Read and check a corps file.

    Raises:
        CorpsFileError: the file is missing, not a YAML list of corps, or an entry is wrong: a
            missing or unknown field, a duplicate corp id, or a secret written inline.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CorpsFileError(
            f"WECOM_CORPS_FILE {path} cannot be read ({type(error).__name__})"
        ) from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CorpsFileError(f"{path}{where}: not valid YAML") from None
    if root is None or not isinstance(root, yaml.SequenceNode) or not root.value:
        raise CorpsFileError(f"{path}: expected a list of corps (- corp_id: ..., secret_env: ...)")
    corps: list[Corp] = []
    seen: dict[str, int] = {}
    for node in root.value:
        corp = _corp(path, node)
        if corp.corp_id in seen:
            raise CorpsFileError(
                f"{path} line {corp.line}: corp_id {corp.corp_id} is listed twice "
                f"(first on line {seen[corp.corp_id]})"
            )
        seen[corp.corp_id] = corp.line
        corps.append(corp)
    return tuple(corps)


def _corp(path: Path, node: yaml.Node) -> Corp:
    line = node.start_mark.line + 1
    where = f"{path} line {line}"
    if not isinstance(node, yaml.MappingNode):
        raise CorpsFileError(f"{where}: each corp is a mapping with corp_id and secret_env")
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if key == "secret" or key == "corp_secret":
            raise CorpsFileError(
                f"{path} line {key_node.start_mark.line + 1}: a secret is written in the file; "
                "put it in an environment variable and name that variable with secret_env"
            )
        if key not in _FIELDS:
            raise CorpsFileError(
                f"{path} line {key_node.start_mark.line + 1}: unknown field {key!r}; "
                f"use {', '.join(_FIELDS)}"
            )
        values[key] = yaml.safe_load(yaml.serialize(value_node))
    for required in ("corp_id", "secret_env"):
        if not isinstance(values.get(required), str) or not values[required].strip():
            raise CorpsFileError(f"{where}: {required} is missing or empty")
    secret_env = values["secret_env"].strip()
    if not _ENV_NAME.fullmatch(secret_env):
        raise CorpsFileError(
            f"{where}: secret_env must be the name of an environment variable, not "
            "a value; put the secret in a variable such as WECOM_SECRET_ACME and name it here"
        )
    base_url = str(values.get("base_url") or "")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise CorpsFileError(f"{where}: base_url must start with http:// or https://")
    case_sensitive = values.get("userids_case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise CorpsFileError(f"{where}: userids_case_sensitive must be true or false")
    return Corp(
        corp_id=values["corp_id"].strip(),
        secret_env=secret_env,
        name=str(values.get("name") or ""),
        base_url=base_url,
        userids_case_sensitive=case_sensitive,
        line=line,
    )
