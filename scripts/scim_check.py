#!/usr/bin/env python3
"""Drives a Sigil tenant's SCIM endpoint with scim2-client, software nobody
at Sigil wrote, and checks every answer against the RFC 7643 schemas with
scim2-models (the client validates each response payload it receives).

Usage: scim_check.py BASE_URL TOKEN [--user-name NAME]

BASE_URL is `{control_url}/t/{tenant}/scim/v2`. It discovers the service
(ServiceProviderConfig, Schemas, ResourceTypes), then creates, reads,
lists, filters, patches, replaces and deletes users and groups, and checks
an error answer. It leaves one user, NAME (default `scim-check`), created
over SCIM with name, title, emails and the enterprise department, active
and in group `scim-check-group`, and prints its id and attributes as JSON
on stdout for the caller (a Rust test issues it a token). Exits non-zero
on the first failed check.
"""

import json
import sys
import warnings

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import (
    EnterpriseUser,
    Error,
    Group,
    GroupMember,
    ListResponse,
    PatchOp,
    PatchOperation,
    SearchRequest,
    User,
)


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    # scim2-client 0.13 deprecates resource_models for a provider object;
    # the deprecated form is the one documented for this pinned version.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    base, token = sys.argv[1], sys.argv[2]
    user_name = "scim-check"
    if "--user-name" in sys.argv:
        user_name = sys.argv[sys.argv.index("--user-name") + 1]
    http = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    scim = SyncSCIMClient(http, resource_models=[User[EnterpriseUser], Group])
    scim.discover()
    check(scim.service_provider_config is not None, "ServiceProviderConfig discovered")
    check(scim.service_provider_config.patch.supported, "PATCH is supported")
    check(
        {rt.name for rt in scim.resource_types} >= {"User", "Group"},
        "ResourceTypes lists User and Group",
    )

    # Create, with core, enterprise and multi-valued attributes.
    scratch = scim.create(User[EnterpriseUser](user_name=f"{user_name}-scratch", display_name="Scratch"))
    check(isinstance(scratch, User), f"create answers a User: {scratch!r}")
    user = User[EnterpriseUser](
        user_name=user_name,
        display_name="Peter Gibbons",
        title="Engineer",
        emails=[User.Emails(value=f"{user_name}@initech.example", primary=True, type="work")],
        name=User.Name(given_name="Peter", family_name="Gibbons"),
    )
    user[EnterpriseUser] = EnterpriseUser(department="TPS", employee_number="42")
    created = scim.create(user)
    check(created.id and created.meta and created.meta.version, "created user has id and meta.version")
    check(created.user_name == user_name, "userName kept")
    check(created[EnterpriseUser].department == "TPS", "enterprise department kept")

    # Read back, and list with a filter (case-insensitive userName).
    fetched = scim.query(User[EnterpriseUser], created.id)
    check(fetched.name.given_name == "Peter", "givenName read back")
    found = scim.query(
        User[EnterpriseUser],
        query_parameters=SearchRequest(filter=f'userName eq "{user_name.upper()}"'),
    )
    check(isinstance(found, ListResponse) and found.total_results == 1, f"filter finds one: {found!r}")
    check(found.resources[0].id == created.id, "filter finds the created user")
    page = scim.query(User[EnterpriseUser], query_parameters=SearchRequest(start_index=1, count=1))
    check(page.total_results >= 2 and len(page.resources) == 1, "paging: count=1 gives one of several")
    found = scim.query(
        User[EnterpriseUser],
        query_parameters=SearchRequest(filter=f'emails.value co "{user_name}@" and active eq true'),
    )
    check(found.total_results == 1, "filter on emails.value and active")

    # PATCH and PUT.
    patched = scim.modify(
        User[EnterpriseUser],
        created.id,
        PatchOp[User[EnterpriseUser]](
            operations=[PatchOperation(op="replace", path="title", value="Senior Engineer")]
        ),
    )
    check(patched is None or patched.title == "Senior Engineer", "PATCH replaced title")
    fetched = scim.query(User[EnterpriseUser], created.id)
    check(fetched.title == "Senior Engineer", "PATCH visible on GET")
    check(fetched.meta.version != created.meta.version, "PATCH changed meta.version")
    fetched.display_name = "Peter G."
    fetched.meta = None
    replaced = scim.replace(fetched)
    check(replaced.display_name == "Peter G.", "PUT replaced displayName")
    check(replaced[EnterpriseUser].department == "TPS", "PUT kept the extension it was sent")

    # Groups: create with members, filter on members.value, PATCH remove.
    group = scim.create(
        Group(
            display_name=f"{user_name}-group",
            members=[GroupMember(value=created.id), GroupMember(value=scratch.id)],
        )
    )
    check(len(group.members) == 2, "group created with two members")
    found = scim.query(Group, query_parameters=SearchRequest(filter=f'members.value eq "{scratch.id}"'))
    # Every user is also in the tenant's group `everyone`.
    check(
        found.total_results == 2
        and {g.display_name for g in found.resources} == {f"{user_name}-group", "everyone"},
        "filter on members.value",
    )
    scim.modify(
        Group,
        group.id,
        PatchOp[Group](
            operations=[PatchOperation(op="remove", path=f'members[value eq "{scratch.id}"]')]
        ),
    )
    group = scim.query(Group, group.id)
    check([m.value for m in group.members] == [created.id], "PATCH removed one member")

    # Delete the scratch user: gone afterwards.
    scim.delete(User[EnterpriseUser], scratch.id)
    gone = scim.query(User[EnterpriseUser], scratch.id, raise_scim_errors=False, expected_status_codes=None)
    check(isinstance(gone, Error) and gone.status == 404, f"deleted user is 404: {gone!r}")

    # An error answer, validated as an Error.
    # (scim2-client refuses to send a malformed filter: send it raw.)
    raw = http.get("/Users", params={"filter": "userName eq"})
    check(raw.headers["content-type"].startswith("application/scim+json"), "error media type")
    bad = Error.model_validate(raw.json())
    check(raw.status_code == 400 and isinstance(bad, Error) and bad.status == 400 and bad.scim_type == "invalidFilter", f"bad filter: {bad!r}")
    duplicate = scim.create(
        User[EnterpriseUser](user_name=user_name), raise_scim_errors=False, expected_status_codes=None
    )
    check(isinstance(duplicate, Error) and duplicate.status == 409, f"duplicate userName: {duplicate!r}")

    print(json.dumps({"id": created.id, "userName": user_name, "group": group.id}))


if __name__ == "__main__":
    main()
