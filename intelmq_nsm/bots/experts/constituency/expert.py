"""The constituency expert: tags each event with the organisation that owns its system and
routes it over the named path of that organisation's constituency.

The registry, its validation and its index live in ``intelmq_nsm.constituency``; this
module only adapts them to IntelMQ messages, reloads and downloads.
"""

import gc
import sys
import time
from typing import Optional, Union

from intelmq.lib.bot import ExpertBot
from intelmq.lib.exceptions import InvalidArgument, InvalidValue

from intelmq_nsm import event_contract as contract
from intelmq_nsm import intelmq_shortcuts as shortcuts
from intelmq_nsm.bots.parameters import unset_empty, without_empty
from intelmq_nsm.constituency import RegistryError, load_registry
from intelmq_nsm.constituency.claims import MAX_SIZE, claims_policy, source_problems, stale
from intelmq_nsm.constituency.index import OWNERS
from intelmq_nsm.constituency.paths import database_paths
from intelmq_nsm.constituency.update import UpdateError, signature, update_claims, update_registry

#: The entry point IntelMQ knows this bot by (runtime.yaml's ``module``).
MODULE = "intelmq.bots.experts.nsm.constituency"


class NSMConstituencyExpertBot(ExpertBot):
    """Tag events with the owning organisation from the constituency registry and route them by constituency"""

    database: Union[str, list] = "/opt/intelmq/var/lib/bots/nsm-constituency"  # file, directory or list
    builtin_municipalities: bool = True  # the 342 municipalities as organisations of constituency ibd
    fields: list = ["source.fqdn", "source.url", "source.ip", "source.asn"]
    owners: str = "all"  # all: the owners of the service and of the network; most-specific: the domain decides alone
    match_asn: bool = False  # an ASN often covers customers that are not the organisation itself
    overwrite: bool = False  # look up events that already carry a constituency
    field: str = "constituency"
    fallback_path: Optional[str] = "_default"  # for constituencies without a path; null dumps them
    reload_check_interval: int = 5  # seconds between checks of the files' mtimes; 0 turns it off
    database_url: Optional[str] = None  # where --update-database downloads the registry from
    #: A hub's: the CERTs whose claims it routes by, constituency key → URL of its claims
    #: (or {url, builtin_municipalities}); --update-database keeps them in the database directory.
    claims: Optional[dict] = None
    claims_max_size: int = MAX_SIZE  # bytes; a larger claims file is refused
    autoupdate_cached_database: bool = True

    def init(self):
        unset_empty(self)  # the IntelMQ Manager writes an empty default as ''
        if self.owners not in OWNERS:
            raise InvalidArgument("owners", got=self.owners, expected=list(OWNERS))
        try:
            self._claims = claims_policy(self.claims, self.database, self.claims_max_size)
        except ValueError as exc:
            raise InvalidArgument("claims", got=self.claims, expected=str(exc)) from None
        registry = getattr(self, "_registry", None)
        try:
            self._load()
        except RegistryError as exc:
            if registry is None:
                raise InvalidArgument("database", got=self.database, expected=f"a valid registry ({exc})") from None
            self.logger.error("Reload failed, the last good registry %s stays in use: %s", registry.version, exc)
        self._paths_configured = set(self.destination_queues or {})
        self._stored_values = {}  # constituency → its value in `field`, as Message.add stored it
        self._warned_paths = set()

    def _load(self) -> None:
        self._signature = signature(self.database)
        # The previous registry's objects go back to the collector's care, so that the
        # cycles among them are freed once it is replaced.
        gc.unfreeze()
        try:
            registry = load_registry(self.database, include_builtin=self.builtin_municipalities, claims=self._claims)
        except RegistryError:
            gc.freeze()  # the last good registry stays, and stays out of the collector's way
            raise
        for issue in registry.issues:
            self.logger.warning("Registry warning: %s.", str(issue).rstrip("."))
        self._registry = registry
        # A large registry is millions of objects that live as long as it does; a full
        # garbage collection would walk all of them, stalling the bot for a second or more
        # every few thousand messages. Frozen, the collector leaves them alone.
        gc.collect()
        gc.freeze()
        self._next_check = time.monotonic() + self.reload_check_interval
        self.logger.info("Loaded constituency registry %s: %s.", registry.version, _describe(registry.stats()))
        # Loudly, at every load: a CERT whose claims could not be refreshed is routed by old ones.
        for level, message in source_problems(self._claims):
            (self.logger.error if level == "error" else self.logger.warning)(message)

    def _reload_if_changed(self) -> None:
        self._next_check = time.monotonic() + self.reload_check_interval
        if signature(self.database) == self._signature:
            return
        self.logger.info("A registry file changed, reloading.")
        try:
            self._load()
        except RegistryError as exc:
            # Remember the broken state so that it is reported once, not every interval.
            self._signature = signature(self.database)
            self.logger.error("Reload failed, the last good registry %s stays in use: %s", self._registry.version, exc)

    def process(self):
        event = self.receive_message()
        # Checked after receiving: the event that waited for a change is routed by it.
        if self.reload_check_interval and time.monotonic() >= self._next_check:
            self._reload_if_changed()
        if self.field in event and not self.overwrite:
            self._send(event, event[self.field])
        else:
            values = [(name, value) for name in self.fields if (value := shortcuts.get(event, name)) is not None]
            routes = self._registry.index.decide(values, self.match_asn, owners=self.owners) if values else []
            if not routes:
                self.send_message(event)
            # Copies only for the second and further constituencies: a copy re-validates
            # every field and costs about as much as receiving the message.
            for route in routes[:-1]:
                self._send(self._tag(event.copy(), route), route.constituency)
            if routes:
                self._send(self._tag(event, routes[-1]), routes[-1].constituency)
        self.acknowledge_message()

    def _tag(self, event, route):
        stored = self._stored_values.get(route.constituency)
        if stored is None:
            # Sanitised and validated for the field's harmonization type once per value;
            # later events get what `add` stored then (as `add` itself stores it).
            event.add(self.field, route.constituency, overwrite=True)
            self._stored_values[route.constituency] = event[self.field]
        else:
            shortcuts.put(event, self.field, stored)
        shortcuts.put(event, contract.ORGANISATIONS, route.organisation_dicts())
        shortcuts.put(event, contract.MATCHES, [m.as_event_dict() for m in route.matches])
        if route.tie:
            shortcuts.put(event, contract.TIE, route.tie)
        elif contract.TIE in event:
            del event[contract.TIE]
        shortcuts.put(event, contract.REGISTRY_VERSION, self._registry.version)
        return event

    def _send(self, event, constituency: str) -> None:
        if constituency in self._paths_configured:
            self.send_message(event, path=constituency)
            return
        if self.fallback_path is None:
            raise InvalidValue(self.field, constituency, reason="no path of this name is configured for the bot")
        if constituency not in self._warned_paths:
            self._warned_paths.add(constituency)
            self.logger.warning(
                "No path %r is configured; events of constituency %r go to path %r.",
                constituency, constituency, self.fallback_path,
            )  # fmt: skip
        self.send_message(event, path=self.fallback_path)

    @staticmethod
    def check(parameters):
        parameters = without_empty(NSMConstituencyExpertBot, parameters)
        defaults = NSMConstituencyExpertBot
        owners = parameters.get("owners", defaults.owners)
        if owners not in OWNERS:
            return [["error", f"The parameter owners must be one of {', '.join(OWNERS)}, not {owners!r}."]]
        paths = database_paths(parameters.get("database", defaults.database))
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            return [["error", f"The constituency registry {', '.join(missing)} does not exist."]]
        builtin = parameters.get("builtin_municipalities", defaults.builtin_municipalities)
        try:
            claims = claims_policy(
                parameters.get("claims"), paths, parameters.get("claims_max_size", defaults.claims_max_size)
            )
        except ValueError as exc:
            return [["error", f"The parameter {exc}."]]
        try:
            registry = load_registry(paths, include_builtin=builtin, claims=claims)
        except RegistryError as exc:
            return [["error", str(exc)]]
        result = [["warning", f"Constituency registry: {issue}."] for issue in registry.issues]
        result += [[level, message] for level, message in source_problems(claims)]
        if not registry.asset_count:
            result.append(["error", f"The constituency registry in {', '.join(map(str, paths))} holds no assets."])
        queues = parameters.get("destination_queues")
        if isinstance(queues, dict):
            fallback = parameters.get("fallback_path", defaults.fallback_path)
            for key in sorted(registry.constituencies):
                if key not in queues:
                    result.append(
                        ["warning", f"Constituency {key!r} has no path of its own; its events go to {fallback!r}."]
                    )
        return result

    # -- --update-database, as IntelMQ's asn_lookup expert does it -------------------------

    @classmethod
    def run(cls, parsed_args=None):
        if not parsed_args:
            parsed_args = cls._create_argparser().parse_args()
        if parsed_args.update_database:
            cls.update_database(verbose=parsed_args.verbose)
        else:
            super().run(parsed_args=parsed_args)

    @classmethod
    def _create_argparser(cls):
        argparser = super()._create_argparser()
        argparser.add_argument("--update-database", action="store_true", help="download the registry from database_url")
        argparser.add_argument("--verbose", action="store_true", help="be verbose")
        return argparser

    @classmethod
    def update_database(cls, verbose: bool = False):
        """Download each configured bot's registry (``database_url``) and its CERTs' claims
        (``claims``), validate each with the bot's other files, swap it in atomically and
        reload the bots that use it. A CERT's claims that are not taken are reported here
        and, after the reload, in the bot's log; the other CERTs' claims are still taken."""
        from intelmq.bin.intelmqctl import IntelMQController
        from intelmq.lib.utils import create_request_session, get_bots_settings

        bots = {}
        for bot_id, settings in get_bots_settings().items():
            parameters = settings.get("parameters", {})
            if settings.get("module") != MODULE:
                continue
            if (parameters.get("database_url") or parameters.get("claims")) and parameters.get(
                "autoupdate_cached_database", cls.autoupdate_cached_database
            ):
                bots[bot_id] = parameters
        if not bots:
            if verbose:
                print("Database update skipped: no constituency expert has a database_url or claims.")
            sys.exit(0)
        session = create_request_session()
        failed = False
        for bot_id, parameters in bots.items():
            database = parameters.get("database", cls.database)
            builtin = parameters.get("builtin_municipalities", cls.builtin_municipalities)
            reload = False
            if parameters.get("database_url"):
                try:
                    target = update_registry(session, parameters["database_url"], database, include_builtin=builtin)
                except (OSError, UpdateError) as exc:
                    print(f"Database update for {bot_id} failed: {exc}", file=sys.stderr)
                    failed = True
                else:
                    reload = True
                    if verbose:
                        print(f"{bot_id}: registry written to {target}; reloading the bot.")
            if parameters.get("claims"):
                failed |= cls._update_claims(bot_id, parameters, session, database, builtin, verbose)
                reload = True  # taken or not: the bot logs what it routes by now
            if not reload:
                continue
            code, status = IntelMQController().bot_reload(bot_id)
            if verbose or code:
                print(f"{bot_id}: reload {'done' if code == 0 else 'failed'}, the bot is {status}.")
        if failed:
            sys.exit(1)

    @classmethod
    def _update_claims(cls, bot_id, parameters, session, database, builtin: bool, verbose: bool) -> bool:
        """Take each CERT's claims that can be taken; True if any could not."""
        try:
            max_size = parameters.get("claims_max_size", cls.claims_max_size)
            policy = claims_policy(parameters["claims"], database, max_size)
        except ValueError as exc:
            print(f"Database update for {bot_id} failed: the parameter {exc}.", file=sys.stderr)
            return True
        failed = False
        for source, status in update_claims(session, policy.sources, database, include_builtin=builtin):
            message = stale(status)
            if message:
                print(f"{bot_id}: ERROR: {message}", file=sys.stderr)
                failed = True
            elif verbose:
                exported = status["in_use"]["exported_at"]
                print(f"{bot_id}: the claims of {source.key} exported at {exported} were taken from {source.url}.")
        return failed


def _describe(stats: dict) -> str:
    claims = f"; claims of {', '.join(stats['claims'])}" if stats["claims"] else ""
    return (
        f"{stats['organisations']} organisations, {stats['networks']} networks, {stats['domains']} domains, "
        f"{stats['asns']} ASNs, {stats['exclusions']} exclusions{claims}"
    )


BOT = NSMConstituencyExpertBot
