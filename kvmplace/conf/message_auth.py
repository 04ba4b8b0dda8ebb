"""[message_auth]: Ed25519 signatures on every RPC message (kvmplace.msgauth).

Why: RabbitMQ's default exchange ``amq.default`` delivers to any queue by
name, and an agent's broker account needs write access to it (its RPC
replies go there), so broker permissions alone cannot stop a compromised
compute host from publishing into another agent's queue or the
conductor's. Each receiver therefore checks who signed a message before
any endpoint method runs (doc/source/user/security.rst).
"""
from oslo_config import cfg

GROUP = cfg.OptGroup(
    'message_auth', title='RPC message authentication',
    help='Ed25519 keys that sign and verify every kvmplace RPC message: the '
         'conductor signs its calls to the agents, each agent its reports, each '
         'operator (CLI, nova-scheduler) its calls to the conductor.')

OPTS = [
    cfg.StrOpt(
        'private_key_file',
        help='This process\'s Ed25519 private key (PEM, PKCS#8, unencrypted; '
             '`kvmplace keys create` makes one, mode 0600). Set: every message this '
             'process sends is signed. It signs as "conductor" on the agent topic, '
             'as "host:<[agent] host>" on the reports topic, and as '
             '"operator:<file name without extension>" on the operator topic. '
             'kvmplace-conductor reads the conductor key, kvmplace-agent its '
             'host\'s key, the CLI an operator key.'),
    cfg.StrOpt(
        'conductor_public_key_file',
        help='kvmplace-agent: the conductor\'s public key (PEM or the raw 32 '
             'bytes, plain or base64). The only key an agent accepts.'),
    cfg.StrOpt(
        'operator_keys_dir',
        help='kvmplace-conductor: directory of operators\' public keys, one '
             '<name>.pub per operator (signer "operator:<name>"), accepted on the '
             'operator topic.'),
    cfg.StrOpt(
        'host_keys_dir',
        help='kvmplace-conductor: directory of compute hosts\' public keys, one '
             '<host>.pub per host (signer "host:<host>"), accepted on the reports '
             'topic, and only for reports about that host.'),
    cfg.IntOpt(
        'max_clock_skew_seconds', default=60, min=1, max=3600,
        help='A signed message whose timestamp is further than this from the '
             'receiver\'s clock is refused; its nonce is remembered for twice this '
             'long, so a replay within the window is refused too.'),
    cfg.BoolOpt(
        'required', default=False,
        help='Refuse unsigned messages. False (default, for a rolling upgrade: '
             'distribute the keys, let every process sign, then set true '
             'everywhere) accepts unsigned messages and logs a warning at start. '
             'A signed message is always verified.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
