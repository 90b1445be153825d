"""Emulation of LINE's channel access token endpoints.

As LINE has them (developers.line.biz/en/reference/messaging-api/, "Channel
access token"; OpenAPI ``channel-access-token.yml``):

* v2.1, from a JWT assertion (``/oauth2/v2.1/token``, ``/verify``,
  ``/revoke``, ``/tokens/kid``). The assertion is checked as LINE checks it
  (docs/messaging-api/generate-json-web-token/#generate-jwt): its header's
  ``kid`` names a public key registered for the channel, the RS256 signature
  verifies with that key, ``iss`` and ``sub`` are the channel ID, ``aud`` is
  ``https://api.line.me/``, ``exp`` is at most 30 minutes ahead and not past,
  and ``token_exp`` (for v2.1 tokens) at most 30 days. At most 30 v2.1
  tokens of a channel are live at once.
* short-lived (``/v2/oauth/accessToken``, 30 days), its verify and revoke;
* stateless (``/oauth2/v3/token``, 15 minutes) from the channel secret or
  from an assertion.

Errors are LINE's OAuth shape: 400 ``{"error", "error_description"}``.
Issued tokens are accepted as Bearer tokens by every other endpoint.

The sandbox channel has a demo assertion signing key, made on first use
(``demo_private_jwk``) and registered under ``DEMO_KID``; tests register
their own with ``state.register_assertion_key(kid, public_jwk)``.
Verifying needs PyJWT and cryptography (the pack's ``[jwt]`` extra), as
signing does: without them these endpoints answer 400 saying so.
"""
import json
import secrets
import threading
from urllib.parse import parse_qs

from .server import Reply

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUDIENCE = "https://api.line.me/"
MAX_ASSERTION_LIFETIME = 30 * 60   # generate-json-web-token#generate-jwt: exp at most 30 minutes
MAX_TOKEN_EXP = 30 * 86400          # token_exp at most 30 days
MAX_V21_TOKENS = 30                 # issue-channel-access-token-v2-1: 30 live tokens per channel
SHORT_LIVED = 30 * 86400            # issue-shortlived-channel-access-token: valid 30 days
DEMO_KID = "sandbox-kid-0001"
DEMO_V21_TOKEN = "sandbox-v21-token"
DEMO_SHORT_LIVED_TOKEN = "sandbox-short-lived-token"
NEED_JWT = "this sandbox verifies assertions with PyJWT and cryptography: pip install 'line-connector[jwt]'"

_DEMO = {}
_DEMO_LOCK = threading.Lock()


def demo_private_jwk():
    """The sandbox channel's demo private key as JWK text: made once per
    process (a 2048-bit RSA key, as LINE requires), None without cryptography.
    Not a secret: it only opens this emulator."""
    with _DEMO_LOCK:
        if "jwk" not in _DEMO:
            try:
                from cryptography.hazmat.primitives.asymmetric import rsa
                from jwt.algorithms import RSAAlgorithm
            except ImportError:
                return None
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(key))
            jwk.update(alg="RS256", use="sig")
            _DEMO["jwk"] = json.dumps(jwk)
            public = {k: jwk[k] for k in ("kty", "n", "e")}
            _DEMO["public"] = dict(public, alg="RS256", use="sig")
        return _DEMO["jwk"]


def oauth_error(error, description, status=400):
    return Reply(status, {"error": error, "error_description": description})


def install(state):
    state.assertion_keys = {}        # kid -> public JWK (dict) registered for the channel
    state.v21_tokens = {}            # token -> {"key_id", "expires"}
    state.short_lived_tokens = {}    # token -> expiry
    state.jwt_token_requests = 0     # POST /oauth2/v2.1/token, whatever the answer
    state.v21_tokens_issued = 0
    state.short_lived_issued = 0

    # demo tokens, so verify works on a fresh sandbox (not secrets: they open this emulator only)
    forever = state.clock() + 10 * 365 * 86400
    state.v21_tokens[DEMO_V21_TOKEN] = {"key_id": "sandbox-key-id-0001", "expires": forever}
    state.short_lived_tokens[DEMO_SHORT_LIVED_TOKEN] = forever
    state.issued.update({DEMO_V21_TOKEN: forever, DEMO_SHORT_LIVED_TOKEN: forever})

    def register_assertion_key(kid, public_jwk):
        with state.lock:
            state.assertion_keys[kid] = dict(public_jwk)
    state.register_assertion_key = register_assertion_key


def _public_key(state, kid):
    with state.lock:
        if kid == DEMO_KID and kid not in state.assertion_keys and demo_private_jwk() is not None:
            state.assertion_keys[kid] = _DEMO["public"]
        return state.assertion_keys.get(kid)


def check_assertion(state, assertion, v21):
    """(claims, None) for an assertion LINE would accept, else (None, Reply)."""
    try:
        import jwt
        from jwt.algorithms import RSAAlgorithm
    except ImportError:
        return None, oauth_error("invalid_request", NEED_JWT)
    if not isinstance(assertion, str) or not assertion:
        return None, oauth_error("invalid_request", "client_assertion is required")
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return None, oauth_error("invalid_request", "client_assertion is not a JWT")
    if header.get("alg") != "RS256":
        return None, oauth_error("invalid_request", "the JWT must be signed with RS256")
    public = _public_key(state, header.get("kid"))
    if public is None:
        return None, oauth_error("invalid_client", "no assertion signing key is registered under this kid")
    try:
        claims = jwt.decode(assertion, RSAAlgorithm.from_jwk(json.dumps(public)), algorithms=["RS256"], audience=AUDIENCE,
                            options={"require": ["iss", "sub", "aud", "exp"]})
    except jwt.ExpiredSignatureError:
        return None, oauth_error("invalid_request", "the JWT has expired (exp)")
    except jwt.InvalidAudienceError:
        return None, oauth_error("invalid_request", "aud must be %s" % AUDIENCE)
    except jwt.PyJWTError:
        return None, oauth_error("invalid_client", "invalid signature or claims")
    if claims.get("iss") != state.client_id or claims.get("sub") != state.client_id:
        return None, oauth_error("invalid_client", "iss and sub must be the channel ID")
    if not isinstance(claims["exp"], int) or claims["exp"] - state.clock() > MAX_ASSERTION_LIFETIME:
        return None, oauth_error("invalid_request", "exp must be at most 30 minutes ahead")
    if v21:
        exp = claims.get("token_exp")
        if not isinstance(exp, int) or isinstance(exp, bool) or not 0 < exp <= MAX_TOKEN_EXP:
            return None, oauth_error("invalid_request", "token_exp must be an integer of seconds, at most 30 days")
    return claims, None


def _form(req):
    try:
        text = req.body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _assertion_form(form):
    """None when the form carries an assertion as LINE wants it, else the error."""
    if form.get("grant_type") != "client_credentials":
        return oauth_error("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        return oauth_error("invalid_request", "client_assertion_type must be %s" % ASSERTION_TYPE)
    return None


def routes(emulator):
    state = emulator.state
    plain = emulator.with_request_id

    def live_v21(now):
        return {t: v for t, v in state.v21_tokens.items() if v["expires"] > now}

    def issue_v21(req):
        form = _form(req)
        with state.lock:
            state.jwt_token_requests += 1
        bad = _assertion_form(form)
        if bad:
            return bad
        claims, bad = check_assertion(state, form.get("client_assertion"), v21=True)
        if bad:
            return bad
        token, key_id = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        with state.lock:
            now = state.clock()
            if len(live_v21(now)) >= MAX_V21_TOKENS:
                return oauth_error("invalid_request", "the channel has the maximum number of live tokens (30)")
            state.v21_tokens[token] = {"key_id": key_id, "expires": now + claims["token_exp"]}
            state.issued[token] = now + claims["token_exp"]
            state.v21_tokens_issued += 1
        return Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": claims["token_exp"],
                           "key_id": key_id})

    def verify_v21(req):
        token = req.arg("access_token")
        with state.lock:
            found = state.v21_tokens.get(token) if token else None
            now = state.clock()
        if found is None or found["expires"] <= now:
            return oauth_error("invalid_request", "access token expired or invalid")
        return Reply(200, {"client_id": state.client_id, "expires_in": int(found["expires"] - now),
                           "scope": "profile chat_message.write"})

    def revoke_v21(req):
        form = _form(req)
        if not form.get("access_token"):
            return oauth_error("invalid_request", "access_token is required")
        if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
            return oauth_error("invalid_client", "invalid client_id or client_secret")
        with state.lock:
            state.v21_tokens.pop(form["access_token"], None)
            state.issued.pop(form["access_token"], None)
        return Reply(200, b"", content_type="text/plain")

    def key_ids(req):
        bad = None if req.arg("client_assertion_type") == ASSERTION_TYPE else \
            oauth_error("invalid_request", "client_assertion_type must be %s" % ASSERTION_TYPE)
        if bad:
            return bad
        _, bad = check_assertion(state, req.arg("client_assertion"), v21=False)
        if bad:
            return bad
        with state.lock:
            kids = [v["key_id"] for v in live_v21(state.clock()).values()]
        return Reply(200, {"kids": kids})

    def issue_short_lived(req):
        form = _form(req)
        if form.get("grant_type") != "client_credentials":
            return oauth_error("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
            return oauth_error("invalid_client", "invalid client_id or client_secret")
        token = secrets.token_urlsafe(48)
        with state.lock:
            state.short_lived_tokens[token] = state.issued[token] = state.clock() + SHORT_LIVED
            state.short_lived_issued += 1
        return Reply(200, {"access_token": token, "expires_in": SHORT_LIVED, "token_type": "Bearer"})

    def verify_v2(req):
        token = _form(req).get("access_token")
        if not token:
            return oauth_error("invalid_request", "access_token is required")
        with state.lock:
            now = state.clock()
            if token in state.channel_tokens:  # the long-lived token: ~100 years, as LINE shows it
                return Reply(200, {"client_id": state.client_id, "expires_in": 3138007490, "scope": "P CM"})
            expiry = state.issued.get(token)
        if expiry is None or expiry <= now:
            return oauth_error("invalid_request", "access token expired")
        return Reply(200, {"client_id": state.client_id, "expires_in": int(expiry - now), "scope": "P CM"})

    def revoke_v2(req):
        token = _form(req).get("access_token")
        if not token:
            return oauth_error("invalid_request", "access_token is required")
        with state.lock:
            state.issued.pop(token, None)
            state.short_lived_tokens.pop(token, None)
            state.channel_tokens.discard(token)
        return Reply(200, b"", content_type="text/plain")

    def stateless(req):
        form = _form(req)
        if "client_assertion" not in form and "client_assertion_type" not in form:
            return emulator.oauth_token(req)  # channel ID and secret (line.py)
        with state.lock:
            state.token_requests += 1
        bad = _assertion_form(form)
        if bad:
            return bad
        _, bad = check_assertion(state, form.get("client_assertion"), v21=False)
        if bad:
            return bad
        token = secrets.token_urlsafe(32)
        with state.lock:
            state.issued[token] = state.clock() + state.token_lifetime
        return Reply(200, {"token_type": "Bearer", "access_token": token, "expires_in": state.token_lifetime})

    return {
        ("POST", "/oauth2/v2.1/token"): plain(issue_v21),
        ("GET", "/oauth2/v2.1/verify"): plain(verify_v21),
        ("POST", "/oauth2/v2.1/revoke"): plain(revoke_v21),
        ("GET", "/oauth2/v2.1/tokens/kid"): plain(key_ids),
        ("POST", "/v2/oauth/accessToken"): plain(issue_short_lived),
        ("POST", "/v2/oauth/verify"): plain(verify_v2),
        ("POST", "/v2/oauth/revoke"): plain(revoke_v2),
        ("POST", "/oauth2/v3/token"): plain(stateless),
    }
