"""docs/asyncapi.yaml parses in the official AsyncAPI parser (@asyncapi/parser, npm).

The parser is pinned in tools/asyncapi-check/package-lock.json and installed by
`script/bootstrap --test`; tools/asyncapi-check/check.mjs prints every diagnostic and
exits 1 on any error or warning.
"""

import subprocess
from pathlib import Path

import pytest

from hipsense.mqtt._contract import asyncapi_document, render_yaml
from tests.conftest import ROOT, require_tool

CHECK = ROOT / "tools" / "asyncapi-check"


def parse(path: Path) -> subprocess.CompletedProcess[str]:
    node = require_tool("node")
    if not (CHECK / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail(
            f"{CHECK}/node_modules has no @asyncapi/parser: run script/bootstrap --test "
            "(it runs npm ci there)"
        )
    return subprocess.run(
        [node, str(CHECK / "check.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_checked_in_document_parses_without_errors_or_warnings() -> None:
    result = parse(ROOT / "docs" / "asyncapi.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors, 0 warnings" in result.stdout


def test_the_check_fails_on_an_openapi_discriminator(tmp_path: Path) -> None:
    # What pydantic writes, put back into the document: the parser must refuse it, or the
    # test above proves nothing.
    doc = asyncapi_document()
    event = doc["components"]["schemas"]["EventMessage"]["properties"]["event"]
    event["discriminator"] = {"propertyName": "kind", "mapping": {"rep": "RepPayload"}}
    path = tmp_path / "asyncapi.yaml"
    path.write_text(render_yaml(doc) + "\n")
    result = parse(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"discriminator" property type must be string' in result.stdout
