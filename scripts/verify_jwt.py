#!/usr/bin/env python3
"""Verify Sigil's JWTs with verifiers nobody at Sigil wrote: PyJWT and jwcrypto.

Input (argv[1]): JSON {"jwks": {...} or "jwks_url": "http://...", "cases":
[{"name", "token", "issuer", "audience"}]}. With "jwks_url", PyJWT fetches the
key set itself (PyJWKClient, first, without retrying) and jwcrypto gets it
over HTTP too, as an SP would. Each verifier picks the key from the JWKS by
the token's `kid` and pins the algorithm to the JWK's `alg` (never the token
header's), as a careful relying party does. Output (stdout): JSON {name: {"pyjwt": "ok" |
"error: ...", "jwcrypto": "ok" | "error: ..."}}.
"""
import json
import sys
import urllib.request

import jwt as pyjwt
from jwcrypto import jwk as jc_jwk
from jwcrypto import jwt as jc_jwt


def header_kid(token):
    return pyjwt.get_unverified_header(token).get("kid")


def verify_pyjwt(jwks, case, client=None):
    kid = header_kid(case["token"])
    if client is not None:
        signing_key = client.get_signing_key_from_jwt(case["token"])
        key, alg = signing_key, signing_key.algorithm_name
    else:
        keyset = pyjwt.PyJWKSet.from_dict(jwks)
        key = next((k for k in keyset.keys if k.key_id == kid), None)
        if key is None:
            raise ValueError(f"no key {kid!r} in JWKS")
        alg = next(k["alg"] for k in jwks["keys"] if k["kid"] == kid)
    pyjwt.decode(
        case["token"],
        key.key,
        algorithms=[alg],
        audience=case["audience"],
        issuer=case["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )


def verify_jwcrypto(jwks, case, client=None):
    keyset = jc_jwk.JWKSet.from_json(json.dumps(jwks))
    kid = header_kid(case["token"])
    key = keyset.get_key(kid)
    if key is None:
        raise ValueError(f"no key {kid!r} in JWKS")
    alg = next(k["alg"] for k in jwks["keys"] if k["kid"] == kid)
    token = jc_jwt.JWT(
        jwt=case["token"],
        key=key,
        algs=[alg],
        check_claims={"iss": case["issuer"], "aud": case["audience"], "exp": None},
    )
    json.loads(token.claims)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    client = None
    results = {case["name"]: {} for case in spec["cases"]}
    if "jwks_url" in spec:
        # PyJWKClient makes the first request for the key set, as an SP's
        # library does on its first token; it does not retry (a 503 fails).
        client = pyjwt.PyJWKClient(spec["jwks_url"], cache_keys=False)
        for case in spec["cases"]:
            results[case["name"]]["pyjwt"] = outcome_of(verify_pyjwt, None, case, client)
        with urllib.request.urlopen(spec["jwks_url"], timeout=10) as response:
            spec["jwks"] = json.load(response)
    for case in spec["cases"]:
        outcome = results[case["name"]]
        for name, verify in (("pyjwt", verify_pyjwt), ("jwcrypto", verify_jwcrypto)):
            if name not in outcome:
                outcome[name] = outcome_of(verify, spec["jwks"], case, client)
    json.dump(results, sys.stdout, indent=1)


def outcome_of(verify, jwks, case, client):
    try:
        verify(jwks, case, client)
        return "ok"
    except Exception as e:  # any failure is a refusal
        return f"error: {type(e).__name__}: {e}"


if __name__ == "__main__":
    main()
