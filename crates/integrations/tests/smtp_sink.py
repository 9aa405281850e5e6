#!/usr/bin/env python3
"""smtp_sink: a real SMTP server (aiosmtpd) for vigil's e-mail tests.

Usage: smtp_sink.py DIR [--auth USER:PASSWORD] [--port N]

Listens on 127.0.0.1 on a free port (or N), then prints exactly one line, "ready PORT", and
flushes. Every accepted message is written atomically to DIR/NNNN.json:
  {"mail_from", "rcpt_tos", "subject", "message_id", "from", "to", "content_type",
   "text", "html", "raw"}
with the text/plain and text/html parts decoded by Python's email package.

Faults by recipient: RCPT TO an address starting with "reject@" is answered
"550 5.1.1 no such user", one starting with "later@" "451 4.3.0 try again later".
With --auth, AUTH (PLAIN/LOGIN, allowed without TLS) is required and must match.
SIGTERM or SIGINT stops it.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import sys

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:
    sys.stderr.write(
        "smtp_sink: the Python package aiosmtpd is not installed; run scripts/test, "
        "which installs it (or: python3 -m pip install aiosmtpd)\n"
    )
    sys.exit(3)


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject@"):
            return "550 5.1.1 no such user"
        if address.startswith("later@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "content_type": msg.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
            "raw": raw.decode("utf-8", errors="replace"),
        }
        self.count += 1
        path = os.path.join(self.folder, f"{self.count:04d}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(path + ".tmp", path)
        return f"250 2.0.0 queued as {self.count}"


def authenticator_for(expected):
    user, _, password = expected.partition(":")

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd then answers the failure itself (535).
        return AuthResult(success=ok, handled=False)

    return authenticate


async def main():
    ap = argparse.ArgumentParser(description="SMTP sink for vigil's e-mail tests")
    ap.add_argument("folder")
    ap.add_argument("--auth", metavar="USER:PASSWORD")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    args = ap.parse_args()
    handler = Sink(args.folder)
    options = {"hostname": "smtp-sink.test"}
    if args.auth:
        options.update(
            authenticator=authenticator_for(args.auth),
            auth_required=True,
            auth_require_tls=False,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, **options), "127.0.0.1", args.port, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
