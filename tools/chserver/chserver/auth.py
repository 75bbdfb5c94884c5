"""Who is asking: ClickHouse's authentication of an HTTP request.

Follows ClickHouse's authenticateUserByHTTP: the credentials come from exactly
one of the X-ClickHouse-User/-Key headers, HTTP basic auth, or the
`user`/`password` parameters, and mixing two is refused. With --user/--password
the front checks them against its one user; without, any credentials pass.
A failure is code 516 AUTHENTICATION_FAILED, answered with HTTP 401 and
WWW-Authenticate (a real server answers 403; see errors.STATUS_BY_NAME).
"""

import base64
import hmac

from .errors import CHError


def authenticate(headers, params, auth):
    """The user a request authenticates as, from its headers and parameters;
    auth is the required (user, password), or None to accept anyone."""
    h_user = headers.get("X-ClickHouse-User", "")
    h_key = headers.get("X-ClickHouse-Key", "")
    authz = headers.get("Authorization")
    in_params = "user" in params or "password" in params

    def both(a, b):
        return CHError("AUTHENTICATION_FAILED",
                       "Invalid authentication: it is not allowed to use %s and %s simultaneously" % (a, b))
    if h_user or h_key:
        if not h_user:
            raise CHError("AUTHENTICATION_FAILED", "Got an empty user name from X-ClickHouse HTTP headers")
        if authz:
            raise both("X-ClickHouse HTTP headers", "Authorization HTTP header")
        if in_params:
            raise both("X-ClickHouse HTTP headers", "authentication via parameters")
        user, password = h_user, h_key
    elif authz:
        if in_params:
            raise both("Authorization HTTP header", "authentication via parameters")
        scheme, _, info = authz.strip().partition(" ")
        if scheme.lower() != "basic":
            raise CHError("AUTHENTICATION_FAILED",
                          "Invalid authentication: '%s' HTTP Authorization scheme is not supported" % scheme)
        try:
            user, _, password = base64.b64decode(info.strip()).decode("utf-8").partition(":")
        except Exception:
            raise CHError("AUTHENTICATION_FAILED", "Invalid authentication: malformed Basic credentials")
        if not user:
            raise CHError("AUTHENTICATION_FAILED", "Got an empty user name from Authorization HTTP header")
    else:
        user, password = params.get("user", "default"), params.get("password", "")
        if not user:
            raise CHError("AUTHENTICATION_FAILED", "Got an empty user name from authentication via parameters")
    if auth is None:
        return user
    want_user, want_password = auth
    ok_user = hmac.compare_digest(user.encode("utf-8"), want_user.encode("utf-8"))
    ok_pw = hmac.compare_digest(password.encode("utf-8"), want_password.encode("utf-8"))
    if not (ok_user and ok_pw):
        raise CHError("AUTHENTICATION_FAILED",
                      "%s: Authentication failed: password is incorrect, or there is no user with such name"
                      % user, {"WWW-Authenticate": 'Basic realm="ClickHouse server HTTP API"'})
    return user
