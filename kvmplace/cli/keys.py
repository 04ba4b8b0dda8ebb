"""``kvmplace keys create``: an Ed25519 key pair for message authentication.

Writes ``<name>.key`` (private, mode 0600) and ``<name>.pub`` in ``--dir``;
the role says where the public key goes (doc/source/user/security.rst,
"Message authentication"): the conductor's to every agent
(``conductor_public_key_file``), an operator's to the conductors'
``operator_keys_dir``, a host's to their ``host_keys_dir``. The file name
is the signer's name, so a host key is named after ``[agent] host``.
"""
from __future__ import annotations

from kvmplace import msgauth
from kvmplace.cli import base
from kvmplace.exception import InvalidInput

ROLES = ('conductor', 'operator', 'host')
#: Where each role's public key goes, for the answer.
_TRUSTED_BY = {'conductor': 'every agent: [message_auth] conductor_public_key_file',
               'operator': "the conductors' [message_auth] operator_keys_dir",
               'host': "the conductors' [message_auth] host_keys_dir"}


class KeysCreate(base.ShowOne):
    """Make an Ed25519 key pair for signing RPC messages (never overwrites)."""

    def add_arguments(self, parser):
        parser.add_argument('--role', required=True, choices=ROLES,
                            help='who signs with it: the conductor, an operator, a host')
        parser.add_argument('--name', help='operator or host name (the file name); '
                                           'not for the conductor')
        parser.add_argument('--dir', required=True, help='directory for the two files')
        return parser

    def compute(self, args):
        if args.role == 'conductor':
            if args.name not in (None, 'conductor'):
                raise InvalidInput('--name', 'the conductor key is named "conductor"')
            name, signer = 'conductor', msgauth.CONDUCTOR
        else:
            if not args.name:
                raise InvalidInput('--name', f'required for --role {args.role}')
            name, signer = args.name, f'{args.role}:{args.name}'
        private, public = msgauth.create_keypair(args.dir, name)
        return {'signer': signer, 'private_key_file': private, 'public_key_file': public,
                'public_key_goes_to': _TRUSTED_BY[args.role]}
