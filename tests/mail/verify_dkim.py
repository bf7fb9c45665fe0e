#!/usr/bin/env python3
"""Verifies the DKIM signature of every .eml in a directory with dkimpy.

  verify_dkim.py DIR SELECTOR DOMAIN PUBLIC_KEY_B64

The DNS answer for SELECTOR._domainkey.DOMAIN is given here (no lookup):
`v=DKIM1; k=rsa; p=PUBLIC_KEY_B64`. Exit 1 naming the first message whose
signature does not verify. Needs `pip install dkimpy`.
"""

import os
import sys

import dkim


def main():
    directory, selector, domain, key = sys.argv[1:5]
    record = f"v=DKIM1; k=rsa; p={key}".encode()
    expected = f"{selector}._domainkey.{domain}."

    def dns(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return record if name.rstrip(".") + "." == expected else None

    names = sorted(n for n in os.listdir(directory) if n.endswith(".eml"))
    if not names:
        print(f"{directory}: no messages", file=sys.stderr)
        sys.exit(1)
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            message = f.read()
        if not dkim.verify(message, dnsfunc=dns):
            print(f"{name}: DKIM signature does not verify", file=sys.stderr)
            sys.exit(1)
    print(f"{len(names)} verified")


if __name__ == "__main__":
    main()
