"""The test site: an HTTP server on 127.0.0.1 serving the pages thugrq's tests analyse.

Each page exercises one thing Thug must report: an ActiveX exploit, a redirect chain, an
obfuscated script, a binary download (and a 5 MB one), a slow response, a huge page; and one
thing a dashboard must not do: run the markup of an analysed page. The server records every
request path so tests can tell what was (or was not) fetched, and who fetched what (`visits`):
on the namespace lab (tests/netns.py) the client address says which host, hence which
country, ran an analysis.
"""

from __future__ import annotations

import random
import struct
import threading
import time
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

ACTIVEX = b"""<html><body><script>
var shell = new ActiveXObject("WScript.Shell");
shell.Run("cmd.exe /c calc.exe");
</script></body></html>"""

# The same WScript.Shell abuse, hidden behind escape() and eval() as exploit kits do.
OBFUSCATED = (
    b"<html><body><script>eval(unescape('"
    + "".join(
        f"%{ord(ch):02x}"
        for ch in 'var s = new ActiveXObject("WScript.Shell"); s.Run("powershell -enc AAAA");'
    ).encode()
    + b"'));</script></body></html>"
)

META_REFRESH = b'<html><head><meta http-equiv="refresh" content="0;url=/chain/js"></head></html>'
JS_LOCATION = b'<html><body><script>window.location = "/chain/final";</script></body></html>'
FINAL = b"<html><body><p>the end of the chain</p></body></html>"
DOWNLOAD = b'<html><body><script>window.location = "/sample.exe";</script></body></html>'
BIG_DOWNLOAD = b'<html><body><script>window.location = "/big-sample.exe";</script></body></html>'
#: The size of /big-sample.exe: past Thug's and thugrq's 64 KiB caps on what the log keeps.
BIG_SAMPLE_BYTES = 5 * 1000 * 1000
# Markup that runs a script wherever a page inserts it as HTML: the analyst's dashboard must not.
HOSTILE = b"<html><body><img src=/hostile.png onerror=window.pwned=1><p>hostile</p></body></html>"
# Markup, a link and a navigation whose URL carry script: an analyst's page must run none of it.
HOSTILE_ALL = b"""<html><body><img src=x onerror=window.pwned=1><a href="javascript:window.pwned=2">go</a>
<script>location.href = "/chain/final?q=<script>window.pwned=3</script>&u=javascript:window.pwned=4";</script>
</body></html>"""
SLOW_SCRIPT = b'<html><body><script src="/slow?seconds=30"></script></body></html>'
FSO_WRITE = """<html><body><script>
var fso = new ActiveXObject("Scripting.FileSystemObject");
var paths = ["../../../../tmp/NAME.txt", "..\\..\\..\\..\\tmp\\NAME-win.txt", "/tmp/NAME-abs.txt"];
for (var i = 0; i < paths.length; i++) {
    var f = fso.CreateTextFile(paths[i], true);
    f.WriteLine("written by a hostile page");
    f.Close();
    var g = fso.OpenTextFile(paths[i], 2, true);
    g.Write("again");
    g.Close();
}
fso.CopyFile("/etc/hostname", "../../../../tmp/NAME-copy.txt");
fso.CreateFolder("../../../../tmp/NAME-dir");
</script></body></html>"""
# Memory bombs: one fills V8's heap, the other Python's (each attribute is copied to the DOM).
JS_BOMB = b"<html><body><script>var a = []; for (;;) a.push(new Array(1e6).fill(1.5));</script></body></html>"
DOM_BOMB = b"""<html><body><script>var s = "x".repeat(1 << 23);
for (var i = 0; ; i++) { var p = document.createElement("p"); p.setAttribute("a", s + i); document.body.appendChild(p); }
</script></body></html>"""
INFINITE_LOOP = b"<html><body><script>var i = 0; while (true) { i++; }</script></body></html>"
# ActiveX abuse and requests to 127.0.0.3 (which a worker may refuse) without end: unbounded,
# its result would fill Redis.
FLOOD = b"""<html><body><script>for (var n = 0; ; n++) {
new ActiveXObject("WScript.Shell").Run("calc.exe");
try { var x = new XMLHttpRequest(); x.open("GET", "http://127.0.0.3:9/flood?" + n, false); x.send(); } catch (e) {}
}</script></body></html>"""
# Thousands of 64 KB code snippets: Thug logs each script text it is given.
SNIPPETS = b"""<html><body><script>var text = new Array(64 * 1024 + 1).join("A");
for (var i = 0; i < 1500; i++) { document.createElement("script").text = i + text.substring(8); }
</script></body></html>"""
# A page that never stops asking for URL (catching every error, the deadline's included).
XHR_LOOP = """<html><body><script>var n = 0; while (true) { n++; try {
var x = new XMLHttpRequest(); x.open("GET", "URL?n=" + n, false); x.send();
} catch (e) {} }</script></body></html>"""


def pe_sample() -> bytes:
    """A minimal PE image: DOS header pointing at a PE header for i386."""
    dos = b"MZ" + b"\x90" * 58 + struct.pack("<I", 64)
    pe = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x102)
    return dos + pe + b"\x00" * 512


@cache
def big_sample() -> bytes:
    """`pe_sample()` followed by pseudo-random bytes (the same every run, and incompressible,
    as packed payloads are) up to BIG_SAMPLE_BYTES."""
    head = pe_sample()
    return head + random.Random(16).randbytes(BIG_SAMPLE_BYTES - len(head))


PAGES: dict[str, tuple[str, bytes]] = {
    "/activex": ("text/html", ACTIVEX),
    "/obfuscated": ("text/html", OBFUSCATED),
    "/chain/meta": ("text/html", META_REFRESH),
    "/chain/js": ("text/html", JS_LOCATION),
    "/chain/final": ("text/html", FINAL),
    "/flagged": ("text/html", FINAL),  # a URL for the tests' own classifier rules
    "/download": ("text/html", DOWNLOAD),
    "/sample.exe": ("application/octet-stream", pe_sample()),
    "/big-download": ("text/html", BIG_DOWNLOAD),
    "/big-sample.exe": ("application/octet-stream", big_sample()),
    "/slow-script": ("text/html", SLOW_SCRIPT),
    "/hostile": ("text/html", HOSTILE),
    "/hostile-all": ("text/html", HOSTILE_ALL),
    "/infinite-loop": ("text/html", INFINITE_LOOP),
    "/flood": ("text/html", FLOOD),
    "/snippets": ("text/html", SNIPPETS),
    "/js-bomb": ("text/html", JS_BOMB),
    "/dom-bomb": ("text/html", DOM_BOMB),
    "/huge": ("text/html", b"<html><body>" + b"<p>" + b"A" * (4 * 1024 * 1024) + b"</p></body></html>"),
}

REDIRECTS = {"/chain/start": "/chain/meta"}

# State an analysis could leave to the next one in the same process: cookies (set by the server
# and by a script), a global, a change to a built-in prototype.
# Then goes on to /state/echo, which sees the cookies within the same analysis.
STATE_SET = b"""<html><body><script>document.cookie = "scripted=1; path=/";
window.leakedGlobal = "set"; Object.prototype.leakedProto = "set";
location.href = "/state/echo";</script>set</body></html>"""
# Navigates once more, adding what its scripts see of such state to its URL.
STATE_SEEN = b"""<html><body><script>location.href = location.href + "&globals=" +
typeof leakedGlobal + "," + typeof ({}).leakedProto + "&cookie_js=" + (document.cookie || "none");
</script></body></html>"""
STATE_PAGES = ("/state/set", "/state/echo", "/state/seen", "/state/counter")


def query_of(text: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(text).items()}


class Visit(NamedTuple):
    """One request: the client's address, and the path with its query string."""

    client: str
    target: str


class Site:
    """A running test site; `url(path)` builds addresses, `requests` lists paths served and
    `visits` each request's client and target."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[str] = []
        self.visits: list[Visit] = []
        self.counter = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                site.requests.append(parts.path)
                site.visits.append(Visit(self.client_address[0], self.path))
                if parts.path == "/cloak":
                    # Exploit kits serve the exploit only to the browsers it works on.
                    target = "/activex" if "MSIE 6.0" in self.headers.get("User-Agent", "") else "/chain/final"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                    return
                if parts.path in STATE_PAGES:
                    self._state(parts.path, query_of(parts.query))
                    return
                if parts.path in REDIRECTS:
                    self.send_response(302)
                    self.send_header("Location", REDIRECTS[parts.path])
                    self.end_headers()
                    return
                query = query_of(parts.query)
                if parts.path == "/redirect":  # to another URL, possibly on another host
                    self.send_response(302)
                    self.send_header("Location", query["to"])
                    self.end_headers()
                    return
                if parts.path in ("/frame", "/script"):  # embeds another URL
                    tag = (
                        f'<iframe src="{query["src"]}"></iframe>' if parts.path == "/frame"
                        else f'<script src="{query["src"]}"></script>'
                    )
                    self._send("text/html", f"<html><body>{tag}</body></html>".encode())
                    return
                if parts.path == "/fso-write":  # ActiveX file writes that escape a directory
                    self._send("text/html", FSO_WRITE.replace("NAME", query["name"]).encode())
                    return
                if parts.path == "/xhr-loop":  # XHRs to another URL, forever
                    self._send("text/html", XHR_LOOP.replace("URL", query["to"]).encode())
                    return
                if parts.path == "/paced":
                    # A page whose analysis takes about `seconds`: it loads a slow script.
                    seconds = parse_qs(parts.query).get("seconds", ["2"])[0]
                    page = f'<html><body><script src="/slow?seconds={float(seconds)}"></script></body></html>'
                    self._send("text/html", page.encode())
                    return
                if parts.path == "/slow":
                    seconds = float(parse_qs(parts.query).get("seconds", ["5"])[0])
                    time.sleep(seconds)
                    self._send("application/javascript", b"var slow = 1;")
                    return
                if parts.path == "/stream":  # `bytes` of HTML, generated, without a length
                    self._stream(int(query["bytes"]))
                    return
                if parts.path not in PAGES:
                    self.send_error(404)
                    return
                self._send(*PAGES[parts.path])

            def _state(self, path: str, query: dict[str, str]) -> None:
                """Pages that show what an analysis carries over from an earlier one."""
                if path == "/state/set":  # leaves a cookie, script globals, a prototype change
                    self.send_response(200)
                    self.send_header("Set-Cookie", "served=1; Path=/")
                    self._send("text/html", STATE_SET, status_sent=True)
                elif path == "/state/echo":  # what the browser sent, in the URL it ends at
                    seen = {
                        "cookie": self.headers.get("Cookie") or "none",
                        "referer": self.headers.get("Referer") or "none",
                        "ua": self.headers.get("User-Agent") or "none",
                    }
                    self.send_response(302)
                    self.send_header("Location", "/state/seen?" + urlencode(seen))
                    self.end_headers()
                elif path == "/state/seen":  # then what its scripts see, once
                    self._send("text/html", b"<html><body>seen</body></html>" if "globals" in query else STATE_SEEN)
                else:  # /state/counter: a page whose content changes at each request
                    site.counter += 1
                    self._send("text/html", f"<html><body><a href='/n/{site.counter}'>{site.counter}</a>"
                               f"<script>location.href = '/chain/final?n={site.counter}';</script></body></html>".encode())

            def _send(self, content_type: str, body: bytes, status_sent: bool = False) -> None:
                if not status_sent:
                    self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _stream(self, size: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                chunk = b"<p>" + b"A" * (1024 * 1024 - 7) + b"</p>\n"
                try:
                    for _ in range(size // len(chunk)):
                        self.wfile.write(chunk)
                    self.wfile.write(b"A" * (size % len(chunk)))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
