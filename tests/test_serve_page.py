"""The verification page at `/`, in headless Chromium (Debian's `chromium` and `chromium-driver`) against a real
`guard serve`: a real upload through the file input, then what the page shows — verdict, evidence, watermark,
the recovered manifest and its history — on a phone-sized window, and a clear error for a bad file."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest
from serve_support import encoded, guard_env, picture, running_server, strip

from guard.protect import Protector
from guard.provenance.credentials.keys import SigningIdentity
from guard.provenance.credentials.store import ManifestStore
from guard.serve.keys import ApiKeys

SCREENSHOT = os.environ.get("SERVE_PAGE_SCREENSHOT")
"""Set to a .png path to keep a picture of the report page (for looking at it, not for the test)."""
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=390,844",
)


@pytest.fixture(scope="module")
def site(home, tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    store_url = f"sqlite:///{folder / 'store.db'}"
    source = folder / "generated.png"
    picture("astronaut", 512).save(source)
    with ManifestStore.open(store_url) as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store)
        result = protector.protect_file(source, folder / "generated-protected.png")
        key = ApiKeys(store.engine).create("verify", "page test")[1]
    files = {
        "stripped": folder / "shared-on-social-media.jpg",
        "photo": folder / "camera.jpg",
        "bad": folder / "not-really.png",
    }
    files["stripped"].write_bytes(strip(result.output.read_bytes()))
    files["photo"].write_bytes(encoded(picture("coffee", 400), quality=90))
    files["bad"].write_bytes(b"this is a text file with an image name\n")
    with running_server(guard_env(home, store_url)) as url:
        yield SimpleNamespace(url=url, key=key, result=result, files=files, folder=folder)


@pytest.fixture(scope="module")
def browser(site):
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("Chromium is needed: apt-get update && apt-get install -y chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={site.folder / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _upload(browser, site, path, *, key: str | None = None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site.url + "/")
    if key is not None:
        field = browser.find_element(By.ID, "key")
        assert field.is_displayed()
        field.send_keys(key)
    browser.find_element(By.ID, "file").send_keys(str(path))

    def finished(driver):
        report = driver.find_element(By.ID, "report")
        status = driver.find_element(By.ID, "status")
        return report.is_displayed() or "error" in (status.get_attribute("class") or "")

    WebDriverWait(browser, 90).until(finished)
    return lambda element_id: browser.find_element(By.ID, element_id)


def test_a_stripped_generated_image_is_traced_back_on_the_page(browser, site):
    find = _upload(browser, site, site.files["stripped"], key=site.key)
    assert find("report").is_displayed(), find("status").text
    assert find("origin").text == "ai-generated"
    assert find("strength").text == "strong"
    assert find("integrity").text == "no credentials"
    assert "ai-generated" in find("verdict").get_attribute("class")
    assert "recovered manifest" in find("reasons").text
    evidence = find("evidence").text
    assert "Content Credentials" in evidence and "none in the file" in evidence
    assert f"guard: present, payload {site.result.payload.hex()}" in find("watermarks").text
    assert find("recovered").is_displayed()
    recovered = find("recovered-facts").text
    assert site.result.manifest_id in recovered and "watermark" in recovered
    assert find("history-section").is_displayed()
    assert "Recovered manifest" in find("history").text and "c2pa.created" in find("history").text
    assert find("name").text == "shared-on-social-media.jpg"
    assert browser.execute_script("return document.getElementById('preview').naturalWidth") > 0
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    if SCREENSHOT:
        browser.save_screenshot(SCREENSHOT)


def test_a_plain_photo_gets_no_origin_claim(browser, site):
    find = _upload(browser, site, site.files["photo"], key=site.key)
    assert find("origin").text == "unknown" and find("strength").text == "none"
    assert "not evidence that it is authentic" in find("reasons").text
    assert not find("recovered").is_displayed()
    assert "not found" in find("watermarks").text


def test_without_a_key_and_with_a_bad_file_the_page_says_why(browser, site):
    find = _upload(browser, site, site.files["photo"])
    assert "error" in find("status").get_attribute("class")
    assert "API key" in find("status").text
    assert find("key-row").is_displayed() and not find("report").is_displayed()
    find = _upload(browser, site, site.files["bad"], key=site.key)
    assert "not an image" in find("status").text
    assert not find("report").is_displayed()


def test_the_page_loads_nothing_from_elsewhere(browser, site):
    browser.get(site.url + "/")
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith(site.url) for name in resources), resources
    console = [entry for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]
    assert console == []
