"""Swagger UI in a real headless Chromium behind a prefix-stripping reverse proxy (issue 21).

The proxy, started here, serves the real oxinfer binary under /prefix: it strips the prefix, sets
X-Forwarded-Prefix and records every request. Chromium (Debian's, driven by selenium through chromedriver, both
provisioned by scripts/browser-env.sh) opens the pages through it, clicks "Try it out" and "Execute", and the
test reads the status and body Swagger UI shows, then checks that the request went through the proxy with the
prefix. Every wait polls for an element; nothing sleeps a fixed time.
"""

import http.client
import json
import os
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

PREFIX = "/prefix"
WAIT_S = 20
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "content-length",
}


class StrippingProxy:
    """A reverse proxy on a free port: `PREFIX/...` goes to the backend as `/...` with `X-Forwarded-Prefix`."""

    def __init__(self, backend):
        self.backend = backend
        self.seen = []  # (method, path as the browser sent it)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                proxy.seen.append((self.command, self.path))
                if self.path != PREFIX and not self.path.startswith(PREFIX + "/"):
                    body = b'{"error": "not under the proxy prefix"}'
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                headers["X-Forwarded-Prefix"] = PREFIX
                upstream = http.client.HTTPConnection(proxy.backend, timeout=30)
                try:
                    upstream.request(self.command, self.path[len(PREFIX):] or "/", body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response(response.status)
                    for k, v in response.getheaders():
                        if k.lower() not in HOP_BY_HOP:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_POST = do_HEAD = do_OPTIONS = forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{PREFIX}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def proxy(server):
    p = StrippingProxy(server.http)
    yield p
    p.close()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    profile = tempfile.mkdtemp(prefix="oxinfer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                "--window-size=1400,2000"):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach the network
    driver = webdriver.Chrome(options=options, service=ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05)


def execute(driver, operation_id):
    """Opens the operation, clicks "Try it out" and "Execute"; returns (request URL, status,
    body text) as the page shows them."""
    block = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, f"[id$='-{operation_id}']")))
    summary = block.find_element(By.CSS_SELECTOR, ".opblock-summary")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", summary)
    summary.click()
    try_out = wait(driver).until(lambda d: block.find_element(By.CSS_SELECTOR, ".try-out__btn"))
    # The page turns "Try it out" on from the start (tryItOutEnabled): turn it off, then click it like a user.
    if try_out.text.strip() == "Cancel":
        try_out.click()
        wait(driver).until(lambda d: try_out.text.strip() == "Try it out")
    try_out.click()
    wait(driver).until(lambda d: try_out.text.strip() == "Cancel")
    button = wait(driver).until(lambda d: block.find_element(By.CSS_SELECTOR, "button.execute"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()
    status = wait(driver).until(
        lambda d: block.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status"))
    wait(driver).until(lambda d: status.text.strip() != "")
    body = block.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_description pre")
    url = block.find_element(By.CSS_SELECTOR, ".request-url pre")
    return url.text.strip(), status.text.strip(), body.text


def open_page(driver, url, title):
    driver.get(url)
    wait(driver).until(lambda d: title in d.find_element(By.CSS_SELECTOR, "body").text)


def test_dataplane_page_executes_through_the_prefix(browser, proxy):
    proxy.seen.clear()
    open_page(browser, proxy.url("/v2/docs"), "oxinfer")  # the redirect to docs/ is relative: stays under it
    assert browser.current_url == proxy.url("/v2/docs/")
    url, status, body = execute(browser, "server_metadata")
    assert url == proxy.url("/v2"), url
    assert status == "200", body
    metadata = json.loads(body)
    assert metadata["name"] and "binary_tensor_data" in metadata["extensions"], metadata
    assert ("GET", f"{PREFIX}/v2") in proxy.seen
    assert ("GET", f"{PREFIX}/v2/docs/dataplane.json") in proxy.seen
    assert all(path.startswith(PREFIX) for _, path in proxy.seen), proxy.seen


def test_model_page_runs_its_example_through_the_prefix(browser, proxy):
    proxy.seen.clear()
    open_page(browser, proxy.url("/v2/models/iris/docs/"), "iris on oxinfer")
    url, status, body = execute(browser, "model_infer")
    assert url == proxy.url("/v2/models/iris/infer"), url
    assert status == "200", body
    response = json.loads(body)
    assert response["model_name"] == "iris"
    assert {o["name"] for o in response["outputs"]} >= {"probabilities"}, response
    assert ("POST", f"{PREFIX}/v2/models/iris/infer") in proxy.seen
    assert all(path.startswith(PREFIX) for _, path in proxy.seen), proxy.seen


def test_unknown_model_page_is_404(proxy):
    for path in ("/v2/models/nope/docs/", "/v2/models/nope/docs/dataplane.json"):
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        connection.request("GET", PREFIX + path)
        response = connection.getresponse()
        assert response.status == 404, path
        assert "Model nope not found" in json.loads(response.read())["error"]
        connection.close()
