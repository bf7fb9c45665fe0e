#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for cpo's SMTP tests.

Binds 127.0.0.1 on a free port, prints `PORT <n>` on stdout once it accepts
connections, and stores every accepted message as DIR/<seq>.eml, with its
envelope in DIR/<seq>.json. It can misbehave on purpose:

  --tempfail N      answer `454 4.7.0` to the first N RCPT commands
  --reject ADDR     answer `550 5.1.1` to RCPT TO:<ADDR> (repeatable)

and speak TLS:

  --host ADDR               listen there instead of 127.0.0.1
  --cert PEM --key PEM      offer STARTTLS with this certificate (and require it)
  --implicit-tls            TLS from the first byte (smtps) with that certificate

Needs `pip install aiosmtpd`. Stops on SIGTERM or when stdin closes.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, out, tempfail, reject):
        self.out = out
        self.tempfail = tempfail
        self.reject = {a.lower() for a in reject}
        self.seq = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.tempfail > 0:
            self.tempfail -= 1
            return "454 4.7.0 Temporary failure, try again later"
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.seq += 1
        base = os.path.join(self.out, f"{self.seq:06d}")
        with open(base + ".eml.partial", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".eml.partial", base + ".eml")
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        return "250 2.0.0 Message accepted for delivery"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--tempfail", type=int, default=0)
    parser.add_argument("--reject", action="append", default=[])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--implicit-tls", action="store_true")
    args = parser.parse_args()
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    os.makedirs(args.out, exist_ok=True)
    handler = Handler(args.out, args.tempfail, args.reject)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, 0))
    loop = asyncio.get_running_loop()
    starttls = context if context is not None and not args.implicit_tls else None

    def protocol():
        return SMTP(
            handler,
            hostname="smtp.test",
            decode_data=False,
            enable_SMTPUTF8=True,
            tls_context=starttls,
            require_starttls=starttls is not None,
        )

    server = await loop.create_server(
        protocol, sock=sock, ssl=context if args.implicit_tls else None
    )
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin, lambda: stop.set() if not sys.stdin.read(1) else None)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
