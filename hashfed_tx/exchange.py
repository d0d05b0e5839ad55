"""The ``hashfed`` SignalExchangeAPI: a hashfed node's merged list as a ThreatExchange
collaboration, read from the change feed of the node's local listener.

Configuration. A collaboration names the listener (``base_url``) and, optionally, the
collection of the node's own log that labels go to (``collection``; the node's default
otherwise). The bearer token (``server.local_token``) is a credential, never stored in the
collaboration: ``TX_HASHFED_TOKEN``, or the file ``~/.tx_hashfed_token``, or in HMA the
exchange's credentials (``{"token": ...}``). A listener without a token needs none.

Fetching. The checkpoint is the feed's cursor, which never expires, so a fetch resumes
wherever the last one stopped (an interrupted one too: the CLI and HMA store the checkpoint
of the last delta they merged). Each delta is one page of the feed (10,000 records), keyed by
(signal type, value), each value the record's whole current state: later pages replace
earlier ones, and a record that turned inactive is deleted. The feed ends when the node
hands back the cursor it was given.

Authentication. ``for_collab`` makes the cheapest authenticated request before handing
back an instance, so a missing or wrong token is the CLI's "Invalid auth for hashfed" at
once (a fetch's own errors are swallowed into "failed to fetch!" by the CLI).

No ``from __future__ import annotations`` here: the CLI builds ``collab edit`` flags, and
HMA its forms, from the config dataclass's field types, which must be real types (and
``t.Optional``, not ``X | None``, which the CLI does not read).
"""


import typing as t
from dataclasses import dataclass, field

from threatexchange.exchanges import auth, signal_exchange_api
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.signal_type.signal_base import SignalType

from hashfed_tx.client import MAX_CHANGES, LocalListenerClient, TokenRejected
from hashfed_tx.signals import HashfedSignalMetadata, RecordReader, opinion_entry

API_NAME: t.Final = "hashfed"
TOKEN_ENV: t.Final = "TX_HASHFED_TOKEN"
TOKEN_FILE: t.Final = "~/.tx_hashfed_token"


@dataclass
class HashfedCheckpoint(state.FetchCheckpointBase):
    """The change feed's cursor (``SEQ.OFFSET``): where the next fetch starts."""

    cursor: str


@dataclass
class _HashfedCollabRequiredFields:
    base_url: str = field(
        metadata={"help": "the node's local listener, e.g. http://127.0.0.1:8471"}
    )


@dataclass
class HashfedCollabConfig(CollaborationConfigWithDefaults, _HashfedCollabRequiredFields):
    api: str = field(init=False, default=API_NAME)
    collection: t.Optional[str] = field(
        default=None,
        metadata={"help": "the collection of the node's own log that labels go to (default: the node's)"},
    )


@dataclass
class HashfedCredentials(auth.CredentialHelper):
    ENV_VARIABLE: t.ClassVar[str] = TOKEN_ENV
    FILE_NAME: t.ClassVar[str] = TOKEN_FILE

    token: str = field(metadata={"help": "the node's server.local_token"})

    @classmethod
    def _from_str(cls, s: str) -> t.Optional["HashfedCredentials"]:
        return cls(s.strip()) if s.strip() else None

    def _are_valid(self) -> bool:
        return bool(self.token) and self.token.isascii() and self.token.isprintable() and " " not in self.token


class HashfedSignalExchangeAPI(
    auth.SignalExchangeWithAuth[HashfedCollabConfig, HashfedCredentials],
    signal_exchange_api.SignalExchangeAPIWithSimpleUpdates[
        HashfedCollabConfig, HashfedCheckpoint, HashfedSignalMetadata
    ],
):
    """A hashfed node's merged list: fetch from its change feed, label into its own log."""

    def __init__(self, collab: HashfedCollabConfig, client: LocalListenerClient) -> None:
        super().__init__()
        self.collab = collab
        self.client = client

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> t.Type[HashfedCollabConfig]:
        return HashfedCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> t.Type[HashfedCheckpoint]:
        return HashfedCheckpoint

    @staticmethod
    def get_record_cls() -> t.Type[HashfedSignalMetadata]:
        return HashfedSignalMetadata

    @staticmethod
    def get_credential_cls() -> t.Type[HashfedCredentials]:
        return HashfedCredentials

    @classmethod
    def for_collab(
        cls,
        collab: HashfedCollabConfig,
        credentials: t.Optional[HashfedCredentials] = None,
    ) -> "HashfedSignalExchangeAPI":
        if credentials is None:
            try:
                credentials = HashfedCredentials.get(cls)
            except auth.SignalExchangeAPIMissingAuthException:
                credentials = None  # a listener without a token; probe() tells if it has one
        client = LocalListenerClient(collab.base_url, credentials.token if credentials else None)
        try:
            client.probe()
        except TokenRejected as exc:
            client.close()
            if credentials is None:
                why = f"requires a bearer token: set {TOKEN_ENV} or write it to {TOKEN_FILE}"
            else:
                why = f"refused our bearer token ({exc})"
            raise auth.SignalExchangeAPIInvalidAuthException(
                cls, f"the node at {client.base_url} {why}"
            ) from exc
        except Exception:
            client.close()
            raise
        return cls(collab, client)

    def fetch_iter(
        self,
        supported_signal_types: t.Sequence[t.Type[SignalType]],
        checkpoint: t.Optional[HashfedCheckpoint],
    ) -> t.Iterator[
        state.FetchDelta[t.Tuple[str, str], HashfedSignalMetadata, HashfedCheckpoint]
    ]:
        reader = RecordReader(st.get_name() for st in supported_signal_types)
        cursor = None if checkpoint is None else checkpoint.cursor
        while True:
            try:
                page = self.client.changes(cursor, MAX_CHANGES)
            except TokenRejected as exc:  # the token changed since for_collab
                raise auth.SignalExchangeAPIInvalidAuthException(type(self), str(exc)) from exc
            if page.next == cursor:
                return
            yield state.FetchDelta(reader.read(page.changes), HashfedCheckpoint(page.next))
            cursor = page.next

    def report_opinion(
        self,
        s_type: t.Type[SignalType],
        signal: str,
        opinion: state.SignalOpinion,
    ) -> None:
        """A signed ``opinion`` in the node's own log, published at once."""
        entry = opinion_entry(s_type.get_name(), signal, opinion)
        self.client.post_opinions([entry], self.collab.collection)
