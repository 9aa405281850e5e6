"""What the benchmark scripts share: building, starting and stopping a real vigil."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_dir():
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                          check=True, capture_output=True, text=True)
    return json.loads(meta.stdout)["target_directory"]


def wait_for_server(server, data, log):
    url_file = os.path.join(data, "server.url")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"vigil exited with {server.returncode}; its log ({log}):\n{tail(log)}")
        if os.path.exists(url_file):
            url = open(url_file).read().strip()
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return url
            except OSError:
                pass
        time.sleep(0.05)
    sys.exit(f"vigil did not answer within 60 s; its log ({log}):\n{tail(log)}")


def tail(path, lines=30):
    try:
        return "".join(open(path, errors="replace").readlines()[-lines:])
    except OSError:
        return ""


def stop(child):
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def interrupted(*_):
    raise KeyboardInterrupt
