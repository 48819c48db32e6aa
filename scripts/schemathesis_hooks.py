"""schemathesis hooks for scripts/schemathesis_check.py.

A generated API key can never be valid, so on its own schemathesis only ever sees
`POST /auth/login` refuse. Every other login it sends carries a real key instead
(`TOWER_BEARER_LOGIN_KEY`, issued by the check script), so that the success path, its 200
and the `AccessToken` body, is checked against the document too.
"""

import itertools
import os

import schemathesis

KEY = os.environ["TOWER_BEARER_LOGIN_KEY"]
logins = itertools.count()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.operation.path != "/auth/login" or not isinstance(case.body, dict):
        return
    if isinstance(case.body.get("api_key"), str) and next(logins) % 2 == 1:
        case.body["api_key"] = KEY
