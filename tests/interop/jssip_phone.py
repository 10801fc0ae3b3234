"""A JsSIP 3.13 phone in headless Chromium, for tests/interop_jssip.rs.

Started by tests/interop/jssip.rs with the interpreter of .venv-interop/
(Selenium from PyPI) and Debian's chromium and chromium-driver. It serves
jssip_phone.html and the JsSIP bundle on a loopback HTTP port of its own (so
the page's Origin is http://127.0.0.1:PORT, a loopback origin the switch's
default WebSocket policy allows), opens the page, starts the phone and then:

- prints every event the page reports as one JSON line on stdout
  ({"type": "registered", ...}), as the page reports it (the page hands its
  events over through an async script that returns as soon as one is
  queued, or after 300 ms with none);
- reads commands as JSON lines on stdin: {"cmd": "register"},
  {"cmd": "unregister"}, {"cmd": "screenshot", "path": P} and
  {"cmd": "quit"} (closes the browser, which closes its WebSocket without
  unregistering). End of stdin is a quit.

The browser's console (JsSIP's debug log: every SIP message) is written to
--log when the script ends. Errors are printed as {"type": "driver-error"}.
"""

import argparse
import functools
import http.server
import json
import os
import queue
import sys
import threading
import traceback


def out(event):
    print(json.dumps(event), flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves the page at / and the bundle at /jssip.js, nothing else."""

    def __init__(self, *args, page=None, bundle=None, **kwargs):
        self.page = page
        self.bundle = bundle
        super().__init__(*args, **kwargs)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        files = {"/": (self.page, "text/html"), "/jssip.js": (self.bundle, "text/javascript")}
        if path not in files:
            self.send_error(404)
            return
        name, kind = files[path]
        with open(name, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", kind + "; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def read_commands(q):
    for line in sys.stdin:
        line = line.strip()
        if line:
            try:
                q.put(json.loads(line))
            except ValueError:
                out({"type": "driver-error", "message": "bad command: " + line})
    q.put({"cmd": "quit"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ws", required=True, help="ws://host:port of the switch")
    ap.add_argument("--uri", required=True, help="the phone's AOR, sip:user@domain")
    ap.add_argument("--password", required=True)
    ap.add_argument("--bundle", required=True, help="the JsSIP bundle (jssip.js)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--log", required=True, help="where the browser console goes")
    args = ap.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    here = os.path.dirname(os.path.abspath(__file__))
    handler = functools.partial(
        Handler, page=os.path.join(here, "jssip_phone.html"), bundle=args.bundle
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = "http://127.0.0.1:%d" % server.server_address[1]

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for a in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--window-size=1280,800",
    ):
        options.add_argument(a)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=args.chromedriver, log_output=args.log + ".chromedriver")
    driver = None
    try:
        driver = webdriver.Chrome(options=options, service=service)
        driver.set_script_timeout(10)
        driver.get(origin + "/")
        out({"type": "browser", "origin": origin, "version": driver.capabilities.get("browserVersion")})
        driver.execute_script(
            "phone.start(arguments[0])",
            {"ws": args.ws, "uri": args.uri, "password": args.password},
        )
        commands = queue.Queue()
        threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                cmd = None
            if cmd is not None:
                name = cmd.get("cmd")
                if name == "quit":
                    break
                if name in ("register", "unregister"):
                    driver.execute_script("phone.%s()" % name)
                elif name == "screenshot":
                    driver.save_screenshot(cmd["path"])
                else:
                    out({"type": "driver-error", "message": "unknown command %r" % name})
                    continue
                out({"type": "done", "cmd": name})
            events = driver.execute_async_script(
                "const done = arguments[arguments.length - 1]; phone.drain(300).then(done);"
            )
            for e in events or []:
                out(e)
    except Exception as e:  # reported, then the test fails on it
        out({"type": "driver-error", "message": "%s: %s" % (type(e).__name__, e)})
        traceback.print_exc()
    finally:
        if driver is not None:
            try:
                with open(args.log, "w") as f:
                    for entry in driver.get_log("browser"):
                        f.write("%s %s\n" % (entry.get("level"), entry.get("message")))
            except Exception:
                traceback.print_exc()
            driver.quit()
        server.shutdown()
        out({"type": "quit"})


if __name__ == "__main__":
    main()
