"""Ed25519 signatures on every RPC message, checked before any endpoint runs.

Why (issue 16): RabbitMQ's default exchange ``amq.default`` routes by
queue name to *any* queue, and an agent's broker account needs write
access to it because oslo.messaging publishes RPC replies there. No vhost
or topic permission can then stop a compromised compute host from
publishing a forged ``migrate`` into another agent's queue, or an
operator call into the conductor's. So every message says who sent it,
and every receiver checks that before dispatching.

Roles (the signer names):

* ``conductor`` - one key shared by the conductors; signs what they send
  to the agents (topic ``kvmplace-agent``). Agents accept nothing else.
* ``operator:<name>`` - the CLI, an operator's tools, nova-scheduler's
  kvmplace filter; signs calls to the operator topic. The conductor keeps
  one public key per operator (``<name>.pub`` in ``operator_keys_dir``).
* ``host:<name>`` - each agent's own key; signs its casts to the reports
  topic. The conductor keeps ``<name>.pub`` in ``host_keys_dir`` and
  accepts a host's ``report_state`` only about that host, and its
  migration casts only for migrations leaving it (the manager checks that
  with :func:`signer_of`).

Conductors never call each other (adoption goes through the database), so
no receiver trusts the conductor key but the agents.

The envelope travels in the RPC request context (oslo.messaging sends the
context dict along with the message)::

    ctxt['kvmplace_auth'] = {'signer', 'server', 'ts', 'nonce', 'sig'}

``sig`` is Ed25519 over the canonical JSON (sorted keys, no spaces) of
signer, ts, nonce, topic, server (None for a fanout or any-server call),
namespace, method, version and args, with args as they are on the wire.
The receiver puts its *own* topic in that text, checks ``server`` is its
own name or None, the timestamp is within ``max_clock_skew_seconds`` and
the nonce unseen in that window, and that the signer may send this method
to this endpoint. The envelope's shape and size are checked before any of
that (a few hundred bytes at most). A refused call raises
:class:`MessageAuthFailed` at the caller; a refused cast is dropped; both
leave one WARNING line, and the endpoint method never runs.
"""
from __future__ import annotations

import base64
import binascii
import collections
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from oslo_messaging.rpc import dispatcher as rpc_dispatcher
from oslo_serialization import jsonutils

from kvmplace.exception import ConfigError, MessageAuthFailed

LOG = logging.getLogger(__name__)

CTXT_KEY = 'kvmplace_auth'
#: Where the dispatcher leaves the verified signer for the endpoint (None:
#: unsigned, accepted because ``required`` is false).
SIGNER_KEY = 'kvmplace_signer'
CONDUCTOR = 'conductor'
OPERATOR_PREFIX = 'operator:'
HOST_PREFIX = 'host:'

#: The receiving endpoints, by what they accept.
AGENT, OPERATOR, REPORTS = 'agent', 'operator', 'reports'

#: Envelope limits: a signer name is a role plus a host or operator name
#: (kvmplace.names allows 255 characters).
MAX_SIGNER_CHARS = 300
NONCE_HEX_CHARS = 32
SIG_B64_CHARS = 88          # base64 of a 64-byte Ed25519 signature
#: Most nonces one receiver remembers; reached only by trusted signers
#: (a nonce is stored after its signature is verified): 200,000 in two
#: skew windows is over 1,600 messages a second at the default.
MAX_NONCES = 200_000

UNAUTHENTICATED_WARNING = ('messages are not authenticated: any broker account can reach '
                           'this service through amq.default; see security.rst')


# -- keys ---------------------------------------------------------------------

def create_keypair(directory: str, name: str) -> tuple[str, str]:
    """Write ``<name>.key`` (PEM PKCS#8, mode 0600) and ``<name>.pub`` (PEM)
    in ``directory``; returns their paths. Refuses to overwrite a key."""
    if not name or '/' in name or name.startswith('.') or not name.isprintable():
        raise ConfigError(f'key name {name!r}: must be a plain file name')
    os.makedirs(directory, mode=0o700, exist_ok=True)
    private_path = os.path.join(directory, f'{name}.key')
    public_path = os.path.join(directory, f'{name}.pub')
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f'{private_path}: exists; not overwritten') from None
    with os.fdopen(fd, 'wb') as fh:
        fh.write(private_pem)
    with open(public_path, 'wb') as fh:
        fh.write(public_pem)
    return private_path, public_path


def _label(option: str) -> str:
    """How an error names the option: ``[message_auth] <option>`` unless
    ``option`` names its group itself (nova.conf's ``[kvmplace] ...``)."""
    return option if option.startswith('[') else f'[message_auth] {option}'


def _read(path: str, option: str) -> bytes:
    path = os.path.expanduser(path)
    try:
        with open(path, 'rb') as fh:
            data = fh.read(65537)
    except OSError as exc:
        raise ConfigError(f'{_label(option)}: {path}: {exc.strerror or exc}') from None
    if len(data) > 65536:
        raise ConfigError(f'{_label(option)}: {path}: larger than 64 KiB, not a key')
    return data


def load_private_key(path: str, option: str = 'private_key_file'
                     ) -> ed25519.Ed25519PrivateKey:
    data = _read(path, option)
    try:
        if data.lstrip().startswith(b'-----'):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(_raw32(data))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f'{_label(option)}: {path}: not an unencrypted Ed25519 '
                          f'private key ({str(exc).splitlines()[0][:80]})') from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f'{_label(option)}: {path}: not an Ed25519 key')
    return key


def load_public_key(path: str, option: str) -> ed25519.Ed25519PublicKey:
    data = _read(path, option)
    try:
        if data.lstrip().startswith(b'-----'):
            key = serialization.load_pem_public_key(data)
        else:
            key = ed25519.Ed25519PublicKey.from_public_bytes(_raw32(data))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f'{_label(option)}: {path}: not an Ed25519 public key '
                          f'({str(exc).splitlines()[0][:80]})') from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError(f'{_label(option)}: {path}: not an Ed25519 key')
    return key


def _raw32(data: bytes) -> bytes:
    """The 32 raw key bytes: as they are, or base64 text of them."""
    if len(data) == 32:
        return data
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError('neither PEM, 32 raw bytes nor base64 of them') from None
    if len(raw) != 32:
        raise ValueError('neither PEM, 32 raw bytes nor base64 of them')
    return raw


def load_key_dir(directory: str, prefix: str, option: str
                 ) -> dict[str, ed25519.Ed25519PublicKey]:
    """``{prefix + name: key}`` for every ``<name>.pub`` in ``directory``."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ConfigError(f'{_label(option)}: {directory}: '
                          f'{exc.strerror or exc}') from None
    return {prefix + name[:-4]: load_public_key(os.path.join(directory, name), option)
            for name in names if name.endswith('.pub') and len(name) > 4}


# -- the signed text ------------------------------------------------------------

def canonical(signer: str, ts: int, nonce: str, topic: str, server: Optional[str],
              namespace: Optional[str], method: str, version: Optional[str],
              args: Any) -> bytes:
    """What is signed: one JSON text, the same on both sides."""
    return json.dumps({'signer': signer, 'ts': ts, 'nonce': nonce, 'topic': topic,
                       'server': server, 'namespace': namespace, 'method': method,
                       'version': version, 'args': args},
                      sort_keys=True, separators=(',', ':')).encode()


def wire_args(args: dict) -> Any:
    """``args`` as the receiver will see them: through oslo.messaging's
    JSON (tuples become lists, datetimes strings...)."""
    return json.loads(jsonutils.dumps(args))


class Signer:
    """Signs outgoing messages as ``name`` with one private key."""

    def __init__(self, name: str, key: ed25519.Ed25519PrivateKey,
                 clock: Callable[[], float] = time.time):
        self.name = name
        self._key = key
        self._clock = clock

    def envelope(self, topic: str, server: Optional[str], namespace: Optional[str],
                 method: str, version: Optional[str], args: dict) -> dict:
        ts = int(self._clock())
        nonce = secrets.token_hex(NONCE_HEX_CHARS // 2)
        text = canonical(self.name, ts, nonce, topic, server, namespace, method, version,
                         wire_args(args))
        sig = base64.b64encode(self._key.sign(text)).decode()
        return {'signer': self.name, 'server': server, 'ts': ts, 'nonce': nonce, 'sig': sig}

    def sign_ctxt(self, ctxt: Optional[dict], target, method: str, args: dict) -> dict:
        """A copy of ``ctxt`` with the envelope for ``method`` to ``target``."""
        out = dict(ctxt or {})
        server = None if target.fanout else target.server
        out[CTXT_KEY] = self.envelope(target.topic, server, target.namespace, method,
                                      target.version, args)
        return out


class SignedClient:
    """An RPCClient (or prepared call context) that signs every call and
    cast; everything else is forwarded to it."""

    def __init__(self, inner, signer: Signer):
        self._inner = inner
        self._signer = signer

    def prepare(self, *args, **kwargs) -> SignedClient:
        return SignedClient(self._inner.prepare(*args, **kwargs), self._signer)

    def call(self, ctxt, method: str, **kwargs):
        return self._inner.call(self._signer.sign_ctxt(ctxt, self._inner.target, method,
                                                       kwargs), method, **kwargs)

    def cast(self, ctxt, method: str, **kwargs):
        return self._inner.cast(self._signer.sign_ctxt(ctxt, self._inner.target, method,
                                                       kwargs), method, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


# -- checking ---------------------------------------------------------------------

class Refused(Exception):
    """Why a message is refused (internal; the caller sees MessageAuthFailed)."""


class ReplayCache:
    """Nonces seen in the last ``window_s`` seconds, bounded in number."""

    def __init__(self, window_s: float, most: int = MAX_NONCES):
        self.window_s = window_s
        self.most = most
        self._seen: collections.OrderedDict[tuple[str, str], float] = \
            collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: tuple[str, str], now: float) -> None:
        """Remember ``key``; Refused if it was seen within the window."""
        with self._lock:
            while self._seen:
                oldest, expires = next(iter(self._seen.items()))
                if expires > now:
                    break
                del self._seen[oldest]
            if key in self._seen:
                raise Refused('nonce already used (a replay)')
            if len(self._seen) >= self.most:
                raise Refused(f'more than {self.most} messages in '
                              f'{self.window_s:g} s; replay cache full')
            self._seen[key] = now + self.window_s

    def __len__(self) -> int:
        return len(self._seen)


def _report_host_rule(signer: str, method: str, args: dict) -> Optional[str]:
    if not signer.startswith(HOST_PREFIX):
        return f'{signer} may not send {method} here (compute hosts only)'
    if method == 'report_state':
        state = args.get('host_state')
        name = state.get('name') if isinstance(state, dict) else None
        if name != signer[len(HOST_PREFIX):]:
            return f'{signer} may not report the state of host {_safe(name)}'
    return None


def allowed(kind: str, signer: str, method: str, args: dict,
            report_methods: tuple[str, ...] = ()) -> Optional[str]:
    """None if ``signer`` may send ``method`` to an endpoint of ``kind``,
    else why not."""
    if kind == AGENT:
        return None if signer == CONDUCTOR else \
            f'{signer} may not call the agents (the conductor only)'
    if kind == REPORTS or method in report_methods:
        return _report_host_rule(signer, method, args)
    if kind == OPERATOR:
        return None if signer.startswith(OPERATOR_PREFIX) else \
            f'{signer} may not call the operator topic (operators only)'
    return f'no signer may call a {kind} endpoint'


@dataclass
class Verifier:
    """The check one RPC server makes on every incoming message."""

    kind: str
    topic: str
    server: str
    keys: dict[str, ed25519.Ed25519PublicKey]
    required: bool
    max_skew_s: int = 60
    report_methods: tuple[str, ...] = ()
    clock: Callable[[], float] = time.time

    def __post_init__(self):
        self.replays = ReplayCache(2.0 * self.max_skew_s)

    def check(self, ctxt: Any, message: Any) -> Optional[str]:
        """The verified signer (None: unsigned and not required); Refused otherwise."""
        if not isinstance(ctxt, dict) or not isinstance(message, dict):
            raise Refused('malformed message')
        method = message.get('method')
        args = message.get('args', {})
        env = ctxt.get(CTXT_KEY)
        if env is None:
            if self.required:
                raise Refused('unsigned message')
            return None
        signer, server, ts, nonce, sig = _envelope(env)
        if server is not None and server != self.server:
            raise Refused(f'signed for server {_safe(server)}, not {self.server}')
        now = self.clock()
        if abs(now - ts) > self.max_skew_s:
            raise Refused(f'timestamp {now - ts:+.0f} s off this clock '
                          f'(max_clock_skew_seconds {self.max_skew_s})')
        key = self.keys.get(signer)
        if key is None:
            raise Refused(f'unknown signer {_safe(signer)}')
        if not isinstance(method, str) or not isinstance(args, dict):
            raise Refused('malformed message')
        try:
            text = canonical(signer, ts, nonce, self.topic, server, message.get('namespace'),
                             method, message.get('version'), args)
        except (TypeError, ValueError, RecursionError):
            raise Refused('arguments are not plain JSON') from None
        try:
            key.verify(sig, text)
        except InvalidSignature:
            raise Refused('bad signature') from None
        why = allowed(self.kind, signer, method, args, self.report_methods)
        if why:
            raise Refused(why)
        self.replays.add((signer, nonce), now)
        return signer


def _envelope(env: Any) -> tuple[str, Optional[str], int, str, bytes]:
    """(signer, server, ts, nonce, signature bytes), shape and size checked
    before anything is decoded: the cost is bounded by these limits."""
    if not isinstance(env, dict) or set(env) != {'signer', 'server', 'ts', 'nonce', 'sig'}:
        raise Refused('malformed envelope (want signer, server, ts, nonce, sig)')
    signer, server, ts, nonce, sig = (env['signer'], env['server'], env['ts'],
                                      env['nonce'], env['sig'])
    if not isinstance(signer, str) or not 0 < len(signer) <= MAX_SIGNER_CHARS \
            or not signer.isprintable():
        raise Refused('malformed envelope: signer')
    if server is not None and (not isinstance(server, str) or len(server) > 255):
        raise Refused('malformed envelope: server')
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < 2 ** 40:
        raise Refused('malformed envelope: ts')
    if not isinstance(nonce, str) or len(nonce) != NONCE_HEX_CHARS or \
            not all(c in '0123456789abcdef' for c in nonce):
        raise Refused('malformed envelope: nonce')
    if not isinstance(sig, str) or len(sig) != SIG_B64_CHARS:
        raise Refused('malformed envelope: sig')
    try:
        raw = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise Refused('malformed envelope: sig') from None
    if len(raw) != 64:
        raise Refused('malformed envelope: sig')
    return signer, server, ts, nonce, raw


def _safe(value: Any) -> str:
    """A value from the wire, fit for one log line."""
    text = value if isinstance(value, str) else repr(value)
    text = ''.join(c if c.isprintable() else '?' for c in text[:80])
    return text + ('...' if len(str(value)) > 80 else '')


def signer_of(ctxt: Any) -> Optional[str]:
    """The verified signer of the message an endpoint is serving (None:
    unsigned), as the dispatcher recorded it."""
    return ctxt.get(SIGNER_KEY) if isinstance(ctxt, dict) else None


class AuthDispatcher(rpc_dispatcher.RPCDispatcher):
    """oslo.messaging's RPC dispatcher with :class:`Verifier` in front."""

    def __init__(self, endpoints, verifier: Verifier, serializer=None, access_policy=None):
        super().__init__(endpoints, serializer, access_policy)
        self.verifier = verifier

    def dispatch(self, incoming):
        ctxt, message = incoming.ctxt, incoming.message
        method = message.get('method') if isinstance(message, dict) else None
        try:
            signer = self.verifier.check(ctxt, message)
        except Refused as exc:
            env = ctxt.get(CTXT_KEY) if isinstance(ctxt, dict) else None
            claimed = env.get('signer') if isinstance(env, dict) else None
            LOG.warning('RPC message refused on %s.%s: signer %s, method %s: %s',
                        self.verifier.topic, self.verifier.server,
                        _safe(claimed) if claimed is not None else '(unsigned)',
                        _safe(method), exc)
            try:
                raise MessageAuthFailed(str(exc)) from None
            except MessageAuthFailed:
                # The caller (of a call) gets MessageAuthFailed; the
                # server logs an expected exception at debug level only.
                raise rpc_dispatcher.ExpectedException() from None
        ctxt.pop(CTXT_KEY, None)
        ctxt[SIGNER_KEY] = signer
        return super().dispatch(incoming)


# -- from the configuration -------------------------------------------------------

def client_signer(conf, topic: str) -> Optional[Signer]:
    """The signer for messages to ``topic`` from a process configured by
    ``conf`` (None: no private key, messages go unsigned)."""
    from kvmplace import rpc
    path = conf.message_auth.private_key_file
    if not path:
        return None
    key = load_private_key(path)
    if topic == rpc.AGENT_TOPIC:
        name = CONDUCTOR
    elif topic == rpc.CONDUCTOR_REPORTS_TOPIC:
        name = HOST_PREFIX + conf.agent.host
    else:
        name = operator_name(path)
    return Signer(name, key)


def operator_name(private_key_file: str) -> str:
    """``operator:<file name without extension>``."""
    base = os.path.basename(private_key_file)
    return OPERATOR_PREFIX + (base.rsplit('.', 1)[0] if '.' in base else base)


_WARNED: set[int] = set()


def verifier_for(conf, topic: str, server: str) -> Verifier:
    """The check for an RPC server on ``topic``: the keys it trusts come
    from ``conf`` ([message_auth]); a bad key file is a ConfigError naming
    the option."""
    from kvmplace import rpc
    opts = conf.message_auth
    keys: dict[str, ed25519.Ed25519PublicKey] = {}
    report_methods: tuple[str, ...] = ()
    if topic == rpc.AGENT_TOPIC:
        kind = AGENT
        if opts.conductor_public_key_file:
            keys[CONDUCTOR] = load_public_key(opts.conductor_public_key_file,
                                              'conductor_public_key_file')
        elif opts.required:
            raise ConfigError('[message_auth] conductor_public_key_file: required when '
                              'required = true')
    else:
        from kvmplace.conductor.endpoint import REPORT_METHODS
        report_methods = REPORT_METHODS
        kind = REPORTS if topic == rpc.CONDUCTOR_REPORTS_TOPIC else OPERATOR
        if opts.host_keys_dir:
            keys.update(load_key_dir(opts.host_keys_dir, HOST_PREFIX, 'host_keys_dir'))
        elif opts.required:
            raise ConfigError('[message_auth] host_keys_dir: required when required = true')
        if kind == OPERATOR:
            if opts.operator_keys_dir:
                keys.update(load_key_dir(opts.operator_keys_dir, OPERATOR_PREFIX,
                                         'operator_keys_dir'))
            elif opts.required:
                raise ConfigError('[message_auth] operator_keys_dir: required when '
                                  'required = true')
    if not opts.required and id(conf) not in _WARNED:
        _WARNED.add(id(conf))
        LOG.warning(UNAUTHENTICATED_WARNING)
    return Verifier(kind, topic, server, keys, opts.required, opts.max_clock_skew_seconds,
                    report_methods)
