#!/usr/bin/env python3
"""A relying party's back-channel logout endpoint, on loopback, that checks
every logout token it is sent with PyJWT (software nobody at Sigil wrote),
as OpenID Connect Back-Channel Logout 1.0 section 2.6 asks of an RP.

Input (argv[1]): JSON {"jwks_url", "issuer", "log", "slow_s", "tls"}. It listens
on 127.0.0.1 (a free port; HTTPS with "tls": {"cert", "key"}: PEM files),
prints {"port": N} on its first line of stdout, and
serves until killed. A POST to /bcl/{client_id} is checked as a logout token
for audience {client_id}; a POST to /slow/{client_id} first sleeps
`slow_s` seconds (a slow receiver). Each POST appends one JSON line to
`log`: {"path", "ok", "error", "claims", "header", "content_type"}; the
answer is 200 when the token is good, 400 otherwise (section 2.8).

Checked: Content-Type application/x-www-form-urlencoded with one
`logout_token`; the signature against the served JWKS (key by `kid`, the
algorithm pinned to the JWK's `alg`); header `typ` `logout+jwt`; `iss`; `aud`
is the client id; `iat`, `exp` (not expired) and `jti` present; `sid` or
`sub` present; `events` holds
"http://schemas.openid.net/event/backchannel-logout" as a JSON object; no
`nonce`.
"""
import json
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def check(token, jwks_client, issuer, audience):
    header = pyjwt.get_unverified_header(token)
    if header.get("typ") != "logout+jwt":
        raise ValueError(f"typ is {header.get('typ')!r}")
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    claims = pyjwt.decode(
        token,
        signing_key.key,
        algorithms=[signing_key.algorithm_name],
        audience=audience,
        issuer=issuer,
        options={"require": ["iss", "aud", "iat", "exp", "jti"]},
    )
    if "sid" not in claims and "sub" not in claims:
        raise ValueError("neither sid nor sub")
    if "nonce" in claims:
        raise ValueError("a logout token must not carry a nonce")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
        raise ValueError(f"events is {events!r}")
    return header, claims


def main():
    config = json.loads(open(sys.argv[1]).read())
    jwks_client = pyjwt.PyJWKClient(config["jwks_url"], cache_keys=True)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            parts = self.path.strip("/").split("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("ascii", "replace")
            if parts[0] == "slow":
                time.sleep(float(config.get("slow_s", 5)))
            entry = {
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "ok": False,
                "error": None,
                "claims": None,
                "header": None,
            }
            try:
                if entry["content_type"] != "application/x-www-form-urlencoded":
                    raise ValueError(f"content type {entry['content_type']!r}")
                form = urllib.parse.parse_qs(body, strict_parsing=True)
                tokens = form.get("logout_token", [])
                if len(tokens) != 1 or set(form) != {"logout_token"}:
                    raise ValueError(f"form {sorted(form)}")
                audience = parts[1] if len(parts) > 1 else ""
                header, claims = check(tokens[0], jwks_client, config["issuer"], audience)
                entry.update(ok=True, claims=claims, header=header)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                entry["error"] = f"{type(e).__name__}: {e}"
            with lock:
                with open(config["log"], "a") as log:
                    log.write(json.dumps(entry) + "\n")
            status = 200 if entry["ok"] else 400
            try:
                self.send_response(status)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up waiting (a slow receiver)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if config.get("tls"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(config["tls"]["cert"], config["tls"]["key"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
