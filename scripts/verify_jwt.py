#!/usr/bin/env python3
"""Verify Sigil's JWTs with verifiers nobody at Sigil wrote: PyJWT and jwcrypto.

Input (argv[1]): JSON {"jwks": {...}, "cases": [{"name", "token", "issuer",
"audience"}]}. Each verifier picks the key from the JWKS by the token's `kid`
and pins the algorithm to the JWK's `alg` (never the token header's), as a
careful relying party does. Output (stdout): JSON {name: {"pyjwt": "ok" |
"error: ...", "jwcrypto": "ok" | "error: ..."}}.
"""
import json
import sys

import jwt as pyjwt
from jwcrypto import jwk as jc_jwk
from jwcrypto import jwt as jc_jwt


def header_kid(token):
    return pyjwt.get_unverified_header(token).get("kid")


def verify_pyjwt(jwks, case):
    keyset = pyjwt.PyJWKSet.from_dict(jwks)
    kid = header_kid(case["token"])
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


def verify_jwcrypto(jwks, case):
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
    results = {}
    for case in spec["cases"]:
        outcome = {}
        for name, verify in (("pyjwt", verify_pyjwt), ("jwcrypto", verify_jwcrypto)):
            try:
                verify(spec["jwks"], case)
                outcome[name] = "ok"
            except Exception as e:  # any failure is a refusal
                outcome[name] = f"error: {type(e).__name__}: {e}"
        results[case["name"]] = outcome
    json.dump(results, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
