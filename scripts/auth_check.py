#!/usr/bin/env python3
"""Password hashes, TOTP codes and token claims from software nobody at Sigil
wrote (issue 18): argon2-cffi, bcrypt, pyotp, PyJWT.

Input (argv[1]): JSON {"tasks": [...]}, each task one of
  {"do": "argon2_hash", "password", "m", "t", "p"}    -> the PHC string
  {"do": "argon2_verify", "hash", "password"}        -> true / false
  {"do": "bcrypt_hash", "password", "rounds"}        -> the $2b$ string
  {"do": "totp", "uri", "at"}                        -> the code at unix time `at`
                                                        (the URI parsed by pyotp)
  {"do": "jwt_claims", "jwks_url", "token", "audience", "issuer"}
                                                     -> the verified claims
Output (stdout): JSON {"results": [...]} in the same order; a task that
raises gives {"error": "..."}.
"""
import json
import sys

import argon2
import bcrypt
import jwt as pyjwt
import pyotp


def run(task):
    do = task["do"]
    if do == "argon2_hash":
        hasher = argon2.PasswordHasher(
            time_cost=task["t"], memory_cost=task["m"], parallelism=task["p"],
            type=argon2.Type.ID)
        return hasher.hash(task["password"])
    if do == "argon2_verify":
        try:
            return argon2.PasswordHasher().verify(task["hash"], task["password"])
        except argon2.exceptions.VerifyMismatchError:
            return False
    if do == "bcrypt_hash":
        salt = bcrypt.gensalt(rounds=task.get("rounds", 4), prefix=b"2b")
        return bcrypt.hashpw(task["password"].encode(), salt).decode()
    if do == "totp":
        totp = pyotp.parse_uri(task["uri"])
        return {"code": totp.at(task["at"]), "digits": totp.digits,
                "interval": totp.interval, "digest": totp.digest().name}
    if do == "jwt_claims":
        client = pyjwt.PyJWKClient(task["jwks_url"])
        key = client.get_signing_key_from_jwt(task["token"])
        return pyjwt.decode(task["token"], key.key, algorithms=[key.algorithm_name],
                            audience=task["audience"], issuer=task["issuer"])
    raise ValueError(f"unknown task {do}")


def main():
    with open(sys.argv[1]) as f:
        tasks = json.load(f)["tasks"]
    results = []
    for task in tasks:
        try:
            results.append(run(task))
        except Exception as e:  # reported, not raised: the test asserts
            results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
