#!/usr/bin/env python3
"""Drives a Sigil tenant's OAuth introspection (RFC 7662) and revocation
(RFC 7009) endpoints with Authlib, software nobody at Sigil wrote: Authlib
makes the private_key_jwt client assertions (RFC 7523) and runs its own
introspection and revocation clients.

Usage:
  introspection_check.py keys DIR
      Makes an RSA-2048, an EC P-256 and an Ed25519 key (joserfc, Authlib's
      JOSE library); writes DIR/jwks.json (the public keys, to register
      with `sigil admin app add --jwks`) and DIR/private.json.
  introspection_check.py check ISSUER APP DIR TOKEN
      Reads the discovery document of ISSUER; with each key (RS256, ES256,
      EdDSA) introspects TOKEN (an access token issued to APP): active,
      with scope, client_id, sub, exp, iat, iss and token_type; checks that
      an assertion replayed is refused (invalid_client); revokes TOKEN with
      Authlib's RFC 7009 client and checks that it is then inactive.
Prints a JSON summary on stdout; exits non-zero on the first failed check.
"""

import json
import sys
import time
import warnings

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

ALGS = [("RS256", RSAKey, 2048), ("ES256", ECKey, "P-256"), ("EdDSA", OKPKey, "Ed25519")]


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def make_keys(directory):
    keys = [cls.generate_key(param, auto_kid=True) for _, cls, param in ALGS]
    public = {"keys": [k.as_dict(private=False) for k in keys]}
    private = {"keys": [k.as_dict(private=True) for k in keys]}
    with open(f"{directory}/jwks.json", "w") as f:
        json.dump(public, f)
    with open(f"{directory}/private.json", "w") as f:
        json.dump(private, f)
    print(json.dumps(public))


def session(app, key, alg, claims=None):
    """An Authlib session authenticating with private_key_jwt: the assertion's
    aud is the endpoint URL, exp one minute ahead (Sigil takes at most five)."""
    s = OAuth2Session(
        app,
        key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
    )
    if claims is None:
        claims = {"exp": int(time.time()) + 60}
    s.register_client_auth_method(PrivateKeyJWT(alg=alg, claims=claims))
    return s


def run_check(issuer, app, directory, token):
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    introspect = discovery["introspection_endpoint"]
    revoke = discovery["revocation_endpoint"]
    check(introspect == f"{issuer}/oauth2/introspect", f"introspection_endpoint {introspect}")
    check(revoke == f"{issuer}/oauth2/revoke", f"revocation_endpoint {revoke}")
    for field in ("introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"):
        check("private_key_jwt" in discovery[field], f"{field}: {discovery[field]}")
    check(discovery.get("backchannel_logout_supported") is True, "backchannel_logout_supported")
    with open(f"{directory}/private.json") as f:
        private = KeySet.import_key_set(json.load(f))
    summary = {"introspected": {}}
    for (alg, _, _), key in zip(ALGS, private.keys):
        resp = session(app, key, alg).introspect_token(introspect, token=token, token_type_hint="access_token")
        check(resp.status_code == 200, f"{alg}: introspection answered {resp.status_code} {resp.text}")
        body = resp.json()
        check(body.get("active") is True, f"{alg}: token active: {body}")
        for field in ("scope", "client_id", "sub", "exp", "iat", "iss", "token_type"):
            check(field in body, f"{alg}: `{field}` in {body}")
        check(body["client_id"] == app and body["iss"] == issuer, f"{alg}: client_id and iss: {body}")
        summary["introspected"][alg] = body
    # The same assertion twice: Authlib keeps the jti it generated in the
    # claims it was given, so a second request replays it.
    claims = {"exp": int(time.time()) + 60}
    replaying = session(app, private.keys[2], "EdDSA", claims)
    first = replaying.introspect_token(introspect, token=token)
    again = replaying.introspect_token(introspect, token=token)
    check(first.status_code == 200, f"first use: {first.status_code} {first.text}")
    check(
        again.status_code == 401 and again.json().get("error") == "invalid_client",
        f"replayed assertion refused: {again.status_code} {again.text}",
    )
    # A garbage token: inactive, not an error.
    resp = session(app, private.keys[1], "ES256").introspect_token(introspect, token="not-a-token")
    check(resp.status_code == 200 and resp.json() == {"active": False}, f"garbage: {resp.text}")
    # Revocation with Authlib's RFC 7009 client, then inactive.
    resp = session(app, private.keys[0], "RS256").revoke_token(revoke, token=token, token_type_hint="access_token")
    check(resp.status_code == 200, f"revoke answered {resp.status_code} {resp.text}")
    resp = session(app, private.keys[1], "ES256").introspect_token(introspect, token=token)
    check(resp.status_code == 200 and resp.json() == {"active": False}, f"after revoke: {resp.text}")
    summary["revoked"] = True
    print(json.dumps(summary))


def main():
    # joserfc flags EdDSA (RFC 9864 prefers "Ed25519"); Sigil accepts EdDSA.
    warnings.filterwarnings("ignore", message="EdDSA is deprecated")
    if len(sys.argv) == 3 and sys.argv[1] == "keys":
        make_keys(sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == "check":
        run_check(*sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
