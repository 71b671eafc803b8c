"""The patient's side of linking in a real headless Chromium, then a measurement to FHIR.

Chromium is Debian's (``/usr/bin/chromium``), driven by playwright-core from npm; ``scripts/test``
installs both. The browser opens the signed link URL, is redirected to the sandbox's consent
page, clicks "Allow", and must land on OHE's success page.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.helpers import ROOT, wait_for

pytestmark = pytest.mark.integration

DRIVER = ROOT / "tests" / "browser" / "link_flow.mjs"


def _browse(url: str, choice: str = "allow") -> dict:
    assert shutil.which("node"), "node is required for the browser test (Debian nodejs)"
    assert (ROOT / "tests" / "browser" / "node_modules" / "playwright-core").exists(), (
        "playwright-core is missing: run `npm ci --prefix tests/browser` (scripts/test does)"
    )
    assert shutil.which("chromium"), "Debian chromium is missing (scripts/test installs it)"
    result = subprocess.run(
        ["node", str(DRIVER), url, choice], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_patient_links_in_a_browser_and_a_new_weight_reaches_fhir(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    created = stack.api(
        "POST", "/api/base/link/withings/", json={"ehr_user_id": "browser-patient-1"}
    )
    assert created.status_code == 201, created.text

    page = _browse(created.json()["link_url"])
    assert page["consentUrl"].startswith(stack.withings.url + "/oauth2_user/authorize2")
    assert page["status"] == "success", page
    assert page["title"] == "Account linked"
    link = stack.link_row("browser-patient-1")
    assert link is not None and link.status == "active"

    stack.wait_idle()
    grpid = stack.withings.admin(
        "POST", f"/users/{link.external_user_id}/measures", {"weight_kg": 77.7}
    )["grpid"]
    resource = wait_for(
        lambda: stack.observation_of(link.external_user_id, f"{grpid}:1"), timeout=30
    )
    assert resource["valueQuantity"]["value"] == 77.7
    assert resource["subject"]["reference"] == "Patient/browser-patient-1"


def test_declining_consent_ends_on_an_error_page_and_links_nothing(make_stack) -> None:
    stack = make_stack()
    created = stack.api(
        "POST", "/api/base/link/withings/",
        json={"ehr_user_id": "browser-patient-2", "error_url": "myapp://linking/failed"},
    )  # fmt: skip
    page = _browse(created.json()["link_url"], choice="deny")
    assert page["status"] == "error"
    assert page["reason"] == "access_denied"
    assert stack.link_row("browser-patient-2") is None
