"""An example's feedback service configuration (its ``feedback.yaml``, beside its
runtime.yaml) on the test bed: read by the service's own loader, checked against the
runtime whose ledger it serves, and laid out in a private working directory as the
runtime is (``layout.localise_value``).

runtime-examples/two-tiers ships one for the hub (``POST /v1/outcomes``) and one for the
IBD (its owners' page); the two-tier demo and the test bed's ``Tiers`` start those
services from them, so that the files run as an operator's would and cannot rot unseen.
"""

import dataclasses
from pathlib import Path
from typing import Optional

from intelmq_nsm.feedback import config as config_mod
from intelmq_nsm.testbed.chain import ledger_of
from intelmq_nsm.testbed.layout import INTELMQ_PREFIX, SQLITE_URL, bots_of, localise_value
from intelmq_nsm.testbed.pipeline import LOOPBACK, HarnessError

#: The file's name in an example's folder (an instance's, in runtime-examples/two-tiers).
FILE = "feedback.yaml"
#: The keys that name a file (the loader's) and the ledger's URL, which may name one: each
#: moves into the working directory, so each must be under /opt/intelmq/ in the example.
FILE_KEYS = ("ledger_url", *config_mod.FILE_KEYS)


@dataclasses.dataclass(frozen=True)
class FeedbackFile:
    """``path`` and the configuration the service's loader made of it (``config``: paths as
    the file writes them, or, once :meth:`localised`, as laid out)."""

    path: Path
    config: config_mod.ServiceConfig

    @classmethod
    def read(cls, folder: Path) -> Optional["FeedbackFile"]:
        """The feedback.yaml of ``folder``, None where it has none. HarnessError, naming the
        file, the key and the reason, when the loader refuses it or a file it names is
        not under /opt/intelmq/."""
        path = Path(folder) / FILE
        if not path.exists():
            return None
        try:
            config = config_mod.load(path)
        except config_mod.ConfigError as exc:
            raise HarnessError(str(exc)) from None
        found = cls(path, config)
        for key in FILE_KEYS:
            value = getattr(config, key)
            if value and not str(value).removeprefix(SQLITE_URL).startswith(INTELMQ_PREFIX):
                # Anywhere else it would be made (a secret, a token file) outside the test
                # bed's folder, or read from the checkout.
                raise found.problem(
                    key, f"{value} is not under {INTELMQ_PREFIX}, where the test bed lays an example's files out."
                )
        return found

    def problem(self, key: str, reason: str) -> HarnessError:
        return HarnessError(f"The configuration file {self.path}: {key} {reason}")

    def localised(self, workdir: Path, port: int) -> "FeedbackFile":
        """The configuration as the runtime beside it is laid out in ``workdir``: its files
        moved there, listening on ``port`` of the loopback address, which its base URL names
        (the file's public URL is an operator's, not this machine's)."""
        moved = {key: localise_value(getattr(self.config, key), workdir) for key in FILE_KEYS}
        config = dataclasses.replace(
            self.config, **moved, host=LOOPBACK, port=port, base_url=f"http://{LOOPBACK}:{port}"
        )
        return dataclasses.replace(self, config=config)

    def served_by(self, runtime: dict, module: str) -> str:
        """The bot of ``module`` in ``runtime`` (laid out as this configuration is) that writes
        the ledger the service serves: the file's ``ledger_url`` and ``ledger_name``.
        HarnessError naming the key that does not match, and what would."""
        url, name = self.config.ledger_url, self.config.ledger_name
        written = {bot_id: ledger_of(bot_id, runtime[bot_id]) for bot_id in bots_of(runtime, module)}
        for bot_id, ledger in written.items():
            if ledger == (url, name):
                return bot_id
        named = {bot_id: ledger[0] for bot_id, ledger in written.items() if ledger[1] == name}
        if named:
            bot_id, other = next(iter(named.items()))
            raise self.problem("ledger_url", f"{url} is not where {bot_id} writes the ledger {name!r} ({other}).")
        others = ", ".join(f"{ledger[1]!r} ({bot_id})" for bot_id, ledger in written.items()) or "none"
        raise self.problem(
            "ledger_name", f"{name!r} is no ledger the runtime's {module} bots write; they write: {others}."
        )
