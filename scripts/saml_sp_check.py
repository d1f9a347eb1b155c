#!/usr/bin/env python3
"""Process Sigil's SAML Responses the way an SP does, with pysaml2.

Input (argv[1]): JSON {"metadata": "<IdP metadata XML>", "cases": [{"name",
"xml", "sp_entity_id", "acs", "outstanding": "request id" or null,
"want_response_signed": bool}]}. The SP trusts the IdP through the metadata
alone (its signing certificates) and checks signatures (via xmlsec1),
audience, recipient, time window and InResponseTo.

Output (stdout): JSON {name: {"ok": true, "name_id": ..., "attributes": {...}}
or {"ok": false, "error": "..."}}.
"""
import base64
import json
import logging
import sys

from saml2 import BINDING_HTTP_POST
from saml2.client import Saml2Client
from saml2.config import SPConfig

logging.disable(logging.CRITICAL)


def process(metadata, case):
    config = SPConfig()
    config.load(
        {
            "entityid": case["sp_entity_id"],
            "metadata": {"inline": [metadata]},
            "service": {
                "sp": {
                    "endpoints": {"assertion_consumer_service": [(case["acs"], BINDING_HTTP_POST)]},
                    "want_assertions_signed": True,
                    "want_response_signed": case["want_response_signed"],
                    "allow_unsolicited": case["outstanding"] is None,
                }
            },
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "accepted_time_diff": 5,
        }
    )
    client = Saml2Client(config=config)
    outstanding = {case["outstanding"]: "/"} if case["outstanding"] else {}
    encoded = base64.b64encode(case["xml"].encode()).decode()
    response = client.parse_authn_request_response(encoded, BINDING_HTTP_POST, outstanding=outstanding)
    if response is None:
        raise ValueError("no response")
    # The attributes as pysaml2 parsed them from the verified assertion.
    attributes = {
        attribute.name: [value.text for value in attribute.attribute_value]
        for statement in response.assertion.attribute_statement
        for attribute in statement.attribute
    }
    return {"ok": True, "name_id": response.name_id.text, "attributes": attributes}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    results = {}
    for case in spec["cases"]:
        try:
            results[case["name"]] = process(spec["metadata"], case)
        except Exception as e:  # any failure is a refusal
            results[case["name"]] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    json.dump(results, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
