"""Who may read the artist's work through a browser: DNS rebinding and cross-site writes.

A web page can point its own DNS name at 127.0.0.1. Its requests then reach the daemon
as same-origin requests of that page: GETs carry no Origin, only the page's name in
Host. Without a token, only the daemon's own names may appear there. Writes are refused
when the browser says they came from another site, whatever Origin and Referer say.
"""

from __future__ import annotations

import json
import socket
import urllib.request

from reliability_support import assert_error_shape, http_request, raw_http, served_app  # noqa: F401 (fixture)

FAST = {"size": "64x64", "steps": 1}
# The forms a rebinding page (or a probe) put in Host, each answered in full before.
FOREIGN_HOSTS = (
    "evil.example:{port}",
    "localhost.evil.example:{port}",
    "127.0.0.1.evil.example:{port}",
    "localhost.:{port}",
    "evil.example.:{port}",
    "evil.example",
    "",
    "user@localhost:{port}",
    "0.0.0.0:{port}",
    "vm:{port}",  # a real local name for 127.0.0.1, but not one the operator gave
)
OWN_HOSTS = ("127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}", "127.0.0.1", "127.0.0.2:{port}")


def post_json(url: str, path: str, body: dict, headers: dict | None = None) -> dict:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_a_rebound_name_reads_nothing_without_a_token(served_app):
    served = served_app()
    port = served.url.rsplit(":", 1)[1]
    job = post_json(served.url, "/v1/jobs", {"prompt": "the artist's secret harbour", **FAST})
    done = served.wait_job(job["id"])
    image = done["images"][0].rsplit("/", 1)[1]
    secret_paths = ("/v1/jobs", f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/events", f"/v1/images/{image}", "/v1/health", "/openapi.json", "/v1/models")
    for form in FOREIGN_HOSTS:
        host = form.format(port=port)
        for path in secret_paths:
            answer = raw_http(served.url, http_request("GET", path, host))
            assert answer.status == 403, (host, path, answer.status, answer.body[:200])
            assert answer.headers["content-type"].startswith("application/json"), (host, path)
            assert_error_shape(answer.json(), "forbidden_host")
            assert b"secret harbour" not in answer.body and b"\x89PNG" not in answer.body
        # Writes too: a rebound page's POST may carry its own name as Origin, or none.
        answer = raw_http(served.url, http_request("POST", "/v1/jobs", host, headers={"Content-Type": "application/json"}, body=b'{"prompt": "x"}'))
        assert answer.status == 403, (host, answer.status)
    # HTTP/1.0 may leave Host out; a daemon without a token does not guess.
    answer = raw_http(served.url, http_request("GET", "/v1/jobs", None, version="1.0"))
    assert answer.status == 403
    assert_error_shape(answer.json(), "forbidden_host")

    # The daemon's own names still read everything, and build URLs from that name.
    for form in OWN_HOSTS:
        host = form.format(port=port)
        answer = raw_http(served.url, http_request("GET", f"/v1/jobs/{job['id']}", host))
        assert answer.status == 200, (host, answer.status, answer.body[:200])
        assert answer.json()["images"][0] == f"http://{host}/v1/images/{image}", host
        assert raw_http(served.url, http_request("GET", f"/v1/images/{image}", host)).body.startswith(b"\x89PNG")
    assert served.wait_idle() >= 0


def test_names_the_operator_gave_are_accepted_and_urls_follow_public_url(served_app):
    served = served_app(allowed_origins=("http://voicebrush.test:3000",), public_url="https://brush.studio.example/")
    port = served.url.rsplit(":", 1)[1]
    job = post_json(served.url, "/v1/jobs", {"prompt": "a fox", **FAST})
    served.wait_job(job["id"])
    for host in ("voicebrush.test:3000", f"brush.studio.example:{port}", "brush.studio.example"):
        answer = raw_http(served.url, http_request("GET", f"/v1/jobs/{job['id']}", host))
        assert answer.status == 200, host
        # Built from --public-url, never from the Host the request gave.
        assert answer.json()["images"][0].startswith("https://brush.studio.example/v1/images/"), answer.json()
    assert raw_http(served.url, http_request("GET", "/v1/jobs", f"studio.example:{port}")).status == 403


def test_a_token_protected_daemon_answers_to_its_real_name(start_daemon, tmp_path):
    """`serve --host 0.0.0.0 --token-file F`, reached as http://HOSTNAME:PORT (this
    machine's name resolves to it): the plugins' client runs a whole job, its image
    included, which it fetches with the token only because the URL carries the name it
    was set up with. The token never shows in the process list."""
    import psutil
    import voicebrush_client

    token = "remote-token-5a7c"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    daemon = start_daemon("--host", "0.0.0.0", "--token-file", str(token_file))
    assert token not in " ".join(psutil.Process(daemon.process.pid).cmdline())
    port = daemon.url.rsplit(":", 1)[1]
    assert raw_http(f"http://127.0.0.1:{port}", http_request("GET", "/v1/jobs", f"127.0.0.1:{port}")).status == 401  # the file's token is required
    name = socket.gethostname()
    assert socket.gethostbyname(name)  # the name resolves here, as a studio's DNS would
    client = voicebrush_client.Client(f"http://{name}:{port}", token=token, timeout=60)
    result = client.run_job("a lighthouse", **FAST)
    assert result.images and result.images[0].startswith(b"\x89PNG")
    assert result.job["images"][0].startswith(f"http://{name}:{port}/v1/images/")
    # A rebinding page has no token: the same name without it is 401, not a read.
    answer = raw_http(f"http://127.0.0.1:{port}", http_request("GET", "/v1/jobs", f"evil.example:{port}"))
    assert answer.status == 401
    assert_error_shape(answer.json(), "invalid_token")
    assert b"lighthouse" not in answer.body


def test_cross_site_writes_are_refused_whatever_origin_and_referer_say(served_app):
    served = served_app(allowed_origins=("https://studio.example:8443",))
    host = served.url.removeprefix("http://")
    job = {"Content-Type": "application/json"}
    body = json.dumps({"prompt": "x", **FAST}).encode()
    refused = (
        {"Sec-Fetch-Site": "cross-site", **job},
        {"Sec-Fetch-Site": "cross-site", "Referer": "https://evil.example/page", **job},
        {"Sec-Fetch-Site": "Cross-Site", "Origin": "http://localhost:3000", **job},  # a loopback origin, on another site
    )
    for headers in refused:
        answer = raw_http(served.url, http_request("POST", "/v1/jobs", host, headers=headers, body=body))
        assert answer.status == 403, headers
        assert_error_shape(answer.json(), "forbidden_origin")
        answer = raw_http(served.url, http_request("DELETE", "/v1/jobs/" + "0" * 32, host, headers=headers))
        assert answer.status == 403, headers
    # Reads are not writes; and the one cross-site page the operator allowed may write.
    assert raw_http(served.url, http_request("GET", "/v1/jobs", host, headers={"Sec-Fetch-Site": "cross-site"})).status == 200
    allowed = {"Sec-Fetch-Site": "cross-site", "Origin": "https://studio.example:8443", **job}
    assert raw_http(served.url, http_request("POST", "/v1/jobs", host, headers=allowed, body=body)).status == 202
    for site in ("same-origin", "same-site", "none"):
        assert raw_http(served.url, http_request("POST", "/v1/jobs", host, headers={"Sec-Fetch-Site": site, **job}, body=body)).status == 202, site
    served.wait_idle()
