"""``line-connector serve --sandbox``: the service with nothing to set up.

A newcomer (or a platform being wired up) tries every action with curl
before owning any account: this starts the embedded sandbox in-process on a
free loopback port, writes a config naming its demo assets (one asset per
kind, so every action finds exactly one and a call needs no ``asset``), a
webhook route ``demo`` verified with the sandbox's channel secret and
forwarded to a JSON-lines file, and loads that file with the one config
loader every other start uses. Everything lives in a temporary directory
deleted at exit, the state store included: a trial never touches the user's
cache directory, and a restarted trial starts as fresh as its sandbox.
"""
import os
import shutil
import tempfile

#: config asset name -> the sandbox's demo asset kind; names a curl line can use
ASSETS = {"line": "line_channel_access_token", "line_webhook": "line_channel_secret",
          "nxcloud": "nxcloud", "sobot": "sobot"}
WEBHOOK_ROUTE = "demo"


class SandboxTrial:
    """A running sandbox, its config and the directory holding both.
    ``config`` is the loaded ``ServiceConfig``; ``stop()`` ends it all."""

    def __init__(self):
        import json

        from ..config import load_config
        from ..sandbox import Sandbox

        self.workdir = tempfile.mkdtemp(prefix="line-connector-trial-")  # 0700, ours
        self.sandbox = None
        try:
            # the state store is files under the cache dir: point it here, for this
            # process only (a trial is its own process: `line-connector serve --sandbox`)
            os.environ["LINE_CONNECTOR_CACHE_DIR"] = os.path.join(self.workdir, "cache")
            self.sandbox = Sandbox().start()
            demos = self.sandbox.demo_assets()
            self.events_file = os.path.join(self.workdir, "webhook-events.jsonl")
            config = {"assets": {name: demos[kind] for name, kind in ASSETS.items()},
                      "state": "file:",
                      "webhooks": {WEBHOOK_ROUTE: {"asset": "line_webhook",
                                                   "forward": [{"jsonl": self.events_file}]}}}
            path = os.path.join(self.workdir, "config.yaml")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(config, fh, indent=2)  # JSON is YAML: the loader reads it as any config file
            self.config = load_config(path, environ={})
        except BaseException:
            self.stop()
            raise

    def describe(self, url):
        """What the trial prints on stdout once the service listens: where
        to send requests, the asset names, and how to try the webhook route
        (the sandbox's credentials open only the sandbox: not secrets)."""
        return {"url": url, "sandbox": self.sandbox.url, "auth": "none (loopback only)",
                "assets": {name: self.config.assets[name].kind for name in ASSETS},
                "try": "curl -s -X POST %s/v1/actions/line_get_bot_info -H 'Content-Type: application/json' "
                       "-d '{}'" % url,
                "webhook": {"url": "%s/v1/webhooks/%s" % (url, WEBHOOK_ROUTE),
                            "channel_secret": self.sandbox.credentials["channel_secret"],
                            "events_file": self.events_file}}

    def stop(self):
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        shutil.rmtree(self.workdir, ignore_errors=True)
