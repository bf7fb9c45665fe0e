#!/usr/bin/env python3
"""Checks every .eml in a directory with Python's `email` package.

Each message must be multipart/alternative with a text/plain and a text/html
part, carry From, To, Subject, Date, Message-ID <msg-...@domain>,
List-Unsubscribe (an https and a mailto link) and List-Unsubscribe-Post
(RFC 8058), and show no `[doc-id]` citation marker in either part.

  check_mail.py DIR [--escaped-script] [--count N]

--escaped-script: some message's text part holds `<script>x</script>` and
its HTML part holds it escaped; no HTML part contains `<script`.
Prints a JSON summary (count, message ids, subjects); exit 1 naming the
file and the problem.
"""

import argparse
import email
import email.utils
import email.policy
import json
import os
import re
import sys

MARKER = re.compile(r"\[[a-z0-9]+(?:-[a-z0-9]+)+\]")
MESSAGE_ID = re.compile(r"^<msg-[0-9a-f]+@[A-Za-z0-9.-]+>$")


def fail(path, problem):
    print(f"{path}: {problem}", file=sys.stderr)
    sys.exit(1)


def check(path):
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    if msg.get_content_type() != "multipart/alternative":
        fail(path, f"content type {msg.get_content_type()}, not multipart/alternative")
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    if set(parts) != {"text/plain", "text/html"}:
        fail(path, f"parts {sorted(parts)}")
    for header in ["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"]:
        if not msg.get(header):
            fail(path, f"no {header} header")
    if not MESSAGE_ID.match(msg["Message-ID"].strip()):
        fail(path, f"Message-ID {msg['Message-ID']!r}")
    unsubscribe = str(msg["List-Unsubscribe"])
    if not re.search(r"<https?://[^>]+/u/[^>]+>", unsubscribe) or "<mailto:" not in unsubscribe:
        fail(path, f"List-Unsubscribe {unsubscribe!r}")
    if str(msg["List-Unsubscribe-Post"]).strip() != "List-Unsubscribe=One-Click":
        fail(path, "List-Unsubscribe-Post is not List-Unsubscribe=One-Click")
    if email.utils.parsedate_to_datetime(str(msg["Date"])) is None:
        fail(path, "Date does not parse")
    for kind, text in parts.items():
        found = MARKER.search(text)
        if found:
            fail(path, f"{kind} shows the citation marker {found.group(0)}")
        if "[doc-" in text:
            fail(path, f"{kind} shows a [doc- marker")
    if "<script" in parts["text/html"].lower():
        fail(path, "the HTML part contains <script")
    return msg, parts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--escaped-script", action="store_true")
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    names = sorted(n for n in os.listdir(args.dir) if n.endswith(".eml"))
    ids, subjects, escaped = [], [], False
    for name in names:
        msg, parts = check(os.path.join(args.dir, name))
        ids.append(msg["Message-ID"].strip())
        subjects.append(str(msg["Subject"]))
        if "<script>x</script>" in parts["text/plain"] and "&lt;script&gt;x&lt;" in parts["text/html"]:
            escaped = True
    if args.count is not None and len(names) != args.count:
        fail(args.dir, f"{len(names)} messages, expected {args.count}")
    if len(set(ids)) != len(ids):
        fail(args.dir, "a Message-ID appears twice")
    if args.escaped_script and not escaped:
        fail(args.dir, "no message shows the <script>x</script> first name escaped in its HTML part")
    print(json.dumps({"count": len(names), "message_ids": ids, "subjects": subjects}))


if __name__ == "__main__":
    main()
