"""``servers`` of /openapi.json: the absolute URL the caller reached the
service at (SPEC 12), built from the Host header; a Host that is not a plain
host[:port] is never echoed into the document (a relative "/" instead)."""
import json
import urllib.parse



def _servers(raw, url, host):
    request = ("GET /openapi.json HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode("latin-1")
    got, _ = raw(url, request)
    assert got.startswith(b"HTTP/1.1 200 "), got[:300]
    body = got.split(b"\r\n\r\n", 1)[1]
    return json.loads(body)["servers"]


def test_the_host_the_caller_used_is_the_base_url(service_sandbox, service_config, start_service, raw):
    url = start_service(service_config(service_sandbox))
    port = urllib.parse.urlsplit(url).port
    assert _servers(raw, url, "127.0.0.1:%d" % port)[0]["url"] == "http://127.0.0.1:%d" % port
    assert _servers(raw, url, "localhost:%d" % port)[0]["url"] == "http://localhost:%d" % port
    assert _servers(raw, url, "[::1]:%d" % port)[0]["url"] == "http://[::1]:%d" % port


HOSTILE_HOSTS = ["evil.example/path?x=1", "a b", "x" * 300, "user@evil.example",
                 "127.0.0.1:80\"},{\"url\":\"http://evil", "", "host:99999999"]


def test_a_host_that_is_not_a_plain_host_is_never_echoed(service_sandbox, service_config, start_service, raw):
    url = start_service(service_config(service_sandbox))
    for host in HOSTILE_HOSTS:
        assert _servers(raw, url, host)[0]["url"] == "/", host
    # many distinct Host names are answered alike (the cache of documents stays bounded)
    for n in range(20):  # past the 16 cached, answered all the same
        assert _servers(raw, url, "name%d.test:8080" % n)[0]["url"] == "http://name%d.test:8080" % n
