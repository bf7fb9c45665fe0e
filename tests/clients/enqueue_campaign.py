#!/usr/bin/env python3
"""Publish a campaign to the cpo fleet as a CRM would, without any Rust.

Reads a campaign file (default: the bundled data/campaign.yaml), wraps it in the
Envelope<CampaignRequest> the workers expect, validates the whole message against
schemas/campaign-request.json, and only then publishes it to RabbitMQ: persistent,
JSON, with publisher confirms and `mandatory`, so an unroutable or refused message
is an error rather than a silent drop. A message that fails validation is never
published (exit status 2).

Environment (the names the workers read, so one set of variables serves both):
  CPO__AMQP__URL       broker URL (default amqp://guest:guest@127.0.0.1:5672/%2f)
  CPO__AMQP__URL_FILE  a file holding the broker URL (a mounted secret); replaces CPO__AMQP__URL
  CPO__AMQP__PREFIX    the fleet's amqp.prefix (default "cpo.")

Usage:
  enqueue_campaign.py [CAMPAIGN] [--customers CSV] [--dry-run] [--break-schema]
"""

import argparse
import hashlib
import json
import os
import pathlib
import struct
import sys
import time

import jsonschema
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schemas" / "campaign-request.json"
DEFAULT_CAMPAIGN = REPO / "data" / "campaign.yaml"
DEFAULT_CUSTOMERS = REPO / "data" / "customers.csv"

# Payload schema version the workers understand (cpo_shared::envelope::SCHEMA_VERSION).
SCHEMA_VERSION = 1
# The logical queue name is the routing key on the prefix's direct exchange
# (shared/src/transport/amqp/topology.rs).
CAMPAIGNS = "campaigns"
# Fields of a campaign file that belong in the request (anything else is ignored,
# as `cpo enqueue` does).
REQUEST_FIELDS = (
    "campaign_id",
    "name",
    "objective",
    "call_to_action_url",
    "tones",
    "arm_weights",
    "suppressions",
    "audience",
)


DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
DEFAULT_PREFIX = "cpo."
# Names this client read before it used the fleet's; set alone, they would
# silently publish to the default prefix.
RETIRED_NAMES = {"CPO_AMQP_URL": "CPO__AMQP__URL", "CPO_PREFIX": "CPO__AMQP__PREFIX"}


class Refused(Exception):
    """The message is not fit to publish."""


def derive_id(*parts):
    """Same as cpo_shared::envelope::derive_id: a redelivered campaign keeps its id."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        hasher.update(struct.pack("<Q", len(data)))
        hasher.update(data)
    return hasher.digest()[:16].hex()


def load_request(campaign_path, customers):
    with open(campaign_path, encoding="utf-8") as f:
        document = yaml.safe_load(f)
    if not isinstance(document, dict):
        raise Refused(f"{campaign_path}: not a mapping")
    request = {k: document[k] for k in REQUEST_FIELDS if k in document}
    if customers is not None or "audience" not in request:
        csv = pathlib.Path(customers) if customers is not None else DEFAULT_CUSTOMERS
        request["audience"] = {"kind": "csv", "path": str(csv)}
    audience = request["audience"]
    if isinstance(audience, dict) and audience.get("kind") == "csv" and "path" in audience:
        # Workers run in other directories (or other machines sharing a volume):
        # only an absolute path means the same file to them.
        csv = pathlib.Path(audience["path"])
        if not csv.is_absolute():
            csv = (pathlib.Path.cwd() / csv) if csv.exists() else (REPO / csv)
        csv = csv.resolve()
        if not csv.is_file():
            raise Refused(f"customer file {csv} not found")
        audience["path"] = str(csv)
    return request


def build_envelope(request):
    campaign_id = request.get("campaign_id", "")
    return {
        "id": derive_id(str(campaign_id), "campaign"),
        "campaign_id": campaign_id,
        "version": SCHEMA_VERSION,
        "attempt": 0,
        "first_seen_ms": int(time.time() * 1000),
        "payload": request,
    }


def validate(envelope):
    with open(SCHEMA, encoding="utf-8") as f:
        schema = json.load(f)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(envelope), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            lines.append(f"  {where}: {error.message}")
        raise Refused("message fails schemas/campaign-request.json:\n" + "\n".join(lines))
    if not str(envelope["campaign_id"]).strip():
        raise Refused("campaign_id is empty")
    if envelope["campaign_id"] != envelope["payload"]["campaign_id"]:
        raise Refused("envelope and payload disagree on campaign_id")


def redact(url):
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    authority, slash, tail = rest.partition("/")
    user_info, _, host = authority.rpartition("@")
    user = user_info.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{tail}"


def broker_settings(environ):
    """(url, prefix) from the fleet's variables; Refused on a retired name."""
    for old, new in RETIRED_NAMES.items():
        if old in environ and new not in environ:
            raise Refused(f"{old} is no longer read: set {new}, as for the workers")
    url_file = environ.get("CPO__AMQP__URL_FILE")
    if url_file:
        with open(url_file, encoding="utf-8") as f:
            url = f.read().strip()
        if not url:
            raise Refused(f"CPO__AMQP__URL_FILE: {url_file} is empty")
    else:
        url = environ.get("CPO__AMQP__URL", DEFAULT_URL)
    return url, environ.get("CPO__AMQP__PREFIX", DEFAULT_PREFIX)


def publish(envelope, url, prefix):
    import pika  # imported late: --dry-run and refusals need no broker client

    body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        # Confirms make basic_publish wait for the broker: a nack or an unroutable
        # message (mandatory) raises instead of vanishing.
        channel.confirm_delivery()
        channel.basic_publish(
            exchange=f"{prefix}exchange",
            routing_key=CAMPAIGNS,
            body=body,
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=envelope["id"],
            ),
            mandatory=True,
        )
    finally:
        connection.close()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("campaign", nargs="?", default=str(DEFAULT_CAMPAIGN))
    parser.add_argument("--customers", help="customer CSV (default data/customers.csv)")
    parser.add_argument("--dry-run", action="store_true", help="print the envelope, publish nothing")
    parser.add_argument(
        "--break-schema",
        action="store_true",
        help="drop campaign_id from the request (shows that invalid messages are refused)",
    )
    args = parser.parse_args(argv)

    try:
        url, prefix = broker_settings(os.environ)
        request = load_request(args.campaign, args.customers)
        if args.break_schema:
            request.pop("campaign_id", None)
        envelope = build_envelope(request)
        validate(envelope)
    except (Refused, OSError, yaml.YAMLError) as e:
        print(f"refused, nothing published: {e}", file=sys.stderr)
        return 2

    if args.dry_run:
        print(json.dumps(envelope, indent=2, sort_keys=True))
        return 0
    try:
        publish(envelope, url, prefix)
    except Exception as e:  # any broker failure: report it, never a traceback with the URL
        message = str(e).replace(url, redact(url))
        print(
            f"publish to {prefix}exchange (key {CAMPAIGNS}) on {redact(url)} failed: "
            f"{type(e).__name__}: {message}",
            file=sys.stderr,
        )
        return 1
    print(f"enqueued campaign {envelope['campaign_id']} (message {envelope['id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
