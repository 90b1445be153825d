"""Channel access tokens v2.1: the channel signs a JWT with its own key.

LINE's recommended credential for production ("Issue channel access token
v2.1", developers.line.biz/en/docs/messaging-api/generate-json-web-token/):
the asset holds the channel ID, the key ID LINE gave when the public key was
registered, and the private RSA JWK. No long-lived secret travels: the pack
signs a short-lived assertion and exchanges it for a token
(POST /oauth2/v2.1/token, reference #issue-channel-access-token-v2-1).

Signing is PyJWT's (with ``cryptography`` for RS256), a well-kept library,
in the ``[jwt]`` extra: an asset of this kind without it is an invalid
asset (exit 2) that names the extra.

The issued token is kept exactly as a client-credentials token is
(``ClientCredentials`` in auth.py: one entry in the state store under a
lock with a bounded wait, reused until shortly before it expires), so one
token is issued across every process and replica sharing the store. That
matters here more than anywhere: LINE keeps at most 30 live v2.1 tokens per
channel, and each issue uses one up for up to ``token_exp`` seconds.
"""
import hashlib
import json
import time

from line_connector.errors import AuthFailed, InputError
from line_connector.http import UNSENT_ONLY, Request

from .auth import ClientCredentials

#: generate-json-web-token#generate-jwt: ``aud`` is fixed
AUDIENCE = "https://api.line.me/"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: generate-json-web-token#generate-jwt: ``exp`` at most 30 minutes ahead;
#: a minute under it, so a clock slightly ahead of LINE's is not refused
ASSERTION_LIFETIME = 29 * 60
#: generate-json-web-token#generate-jwt: ``token_exp`` at most 30 days
MAX_TOKEN_EXP = 30 * 86400
#: generate-json-web-token#create-an-assertion-signing-key: an RSA key of 2048 bits
KEY_BITS = 2048
TOKEN_PATH = "/oauth2/v2.1/token"
MISSING_EXTRA = ("the line_channel_jwt asset signs its JWT with PyJWT and cryptography, which are not installed: "
                 "pip install 'line-connector[jwt]'")


def _asset_error(field, message):
    return InputError("invalid asset", [{"path": "asset." + field, "message": message}])


def _jwt():
    try:
        import jwt
        from jwt.algorithms import RSAAlgorithm  # needs cryptography
    except ImportError:
        raise InputError(MISSING_EXTRA, [{"path": "asset.private_key", "message": MISSING_EXTRA}]) from None
    if not getattr(RSAAlgorithm, "from_jwk", None):
        raise InputError(MISSING_EXTRA, [{"path": "asset.private_key", "message": MISSING_EXTRA}])
    return jwt, RSAAlgorithm


def load_private_key(text):
    """The RSA private key of a JWK's JSON text, or InputError naming
    ``asset.private_key``. No message quotes the key or the library's own
    error text (which may quote it)."""
    _, RSAAlgorithm = _jwt()
    field = "private_key"
    try:
        jwk = json.loads(text)
    except (ValueError, RecursionError):
        raise _asset_error(field, "must be a JSON Web Key: JSON text of an object (the private key LINE's "
                                  "console or your key generator wrote)") from None
    if not isinstance(jwk, dict):
        raise _asset_error(field, "must be a JSON Web Key: a JSON object")
    if jwk.get("kty") != "RSA":
        raise _asset_error(field, "must be an RSA key (kty RSA): LINE signs assertions with RS256 only")
    if jwk.get("alg") not in (None, "RS256"):
        raise _asset_error(field, "must be a key for RS256 (its alg is another algorithm)")
    if any(m not in jwk for m in ("n", "e", "d")):
        raise _asset_error(field, "must be the private key (a JWK with n, e and d); this one is a public key "
                                  "or incomplete")
    try:
        key = RSAAlgorithm.from_jwk(json.dumps(jwk))
    except Exception:  # any failure: the library's text may quote a member
        key = None
    if key is None or not hasattr(key, "sign"):
        raise _asset_error(field, "is not a valid RSA private key (its members do not form one)")
    if key.key_size != KEY_BITS:
        raise _asset_error(field, "must be a 2048-bit RSA key, as LINE requires; this one has %d bits"
                           % key.key_size)
    return key


class ChannelAssertion:
    """Signs LINE's JWT assertion for one channel and key."""
    clock = staticmethod(time.time)

    def __init__(self, channel_id, kid, private_key_text, redactor):
        self.channel_id = channel_id
        self.kid = kid
        self._redactor = redactor
        redactor.add(private_key_text)  # its private members too (redaction.jwk_private_members)
        self._key = load_private_key(private_key_text)

    def __repr__(self):
        return "ChannelAssertion(channel_id=%r, kid=%r, private_key=***)" % (self.channel_id, self.kid)

    def sign(self, token_exp=None):
        """A fresh assertion (registered as a secret: it issues tokens
        until it expires). ``token_exp`` None: a stateless token's assertion."""
        jwt, _ = _jwt()
        now = int(self.clock())
        claims = {"iss": self.channel_id, "sub": self.channel_id, "aud": AUDIENCE, "exp": now + ASSERTION_LIFETIME}
        if token_exp is not None:
            claims["token_exp"] = int(token_exp)
        assertion = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})
        if isinstance(assertion, bytes):  # PyJWT 1.x
            assertion = assertion.decode("ascii")
        self._redactor.add(assertion)
        self._redactor.add(assertion.rsplit(".", 1)[-1])  # the signature alone
        return assertion

    def form(self, token_exp=None):
        """The form fields LINE's token endpoints take with an assertion."""
        return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.sign(token_exp)}


class ChannelJwt(ClientCredentials):
    """Bearer auth with a channel access token v2.1, issued from a signed
    assertion and shared through the state store like any fetched token.

    Only ``_fetch`` and the store key differ from client credentials: the key
    is the token URL, channel ID, key ID and a SHA-256 digest of the private
    key text (never the key), so another key never rides on this one's token.
    The issue is sent once and never resent blindly: a lost answer may have
    issued a token, and each counts against LINE's 30 per channel.
    """

    def __init__(self, url, channel_id, kid, private_key, token_exp, redactor, store=None):
        self.assertion = ChannelAssertion(channel_id, kid, private_key, redactor)
        super().__init__(url.rstrip("/") + TOKEN_PATH, channel_id, private_key, redactor, store=store)
        digest = hashlib.sha256(private_key.encode("utf-8", "surrogatepass")).hexdigest()
        self._key = "v2.1\n%s\n%s\n%s\n%s" % (self.token_url, channel_id, kid, digest)
        self.token_exp = min(int(token_exp or MAX_TOKEN_EXP), MAX_TOKEN_EXP)

    def __repr__(self):
        return "ChannelJwt(token_url=%r, channel_id=%r, kid=%r, private_key=***)" % (
            self.token_url, self.client_id, self.assertion.kid)

    def issue_request(self):
        from urllib.parse import urlencode

        body = urlencode(self.assertion.form(self.token_exp)).encode("ascii")
        return Request("POST", self.token_url, body=body, retry=UNSENT_ONLY,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})

    def _fetch(self, client):
        result = client.send(self.issue_request())
        try:
            return self.parse_token(result, "channel access token v2.1")
        except AuthFailed as exc:
            if result.get("delivery") != "unknown":
                raise
            # the answer was lost: LINE may have issued a token all the same
            message = ("%s; LINE may have issued a token all the same (line_list_channel_token_key_ids "
                       "lists the live ones)" % exc)
            result["note"] = message
            raise AuthFailed(message, result) from None
