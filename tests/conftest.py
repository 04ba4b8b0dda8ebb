"""Test-wide settings."""
import warnings

# oslo.messaging imports oslo.service, whose eventlet backend prints a
# deprecation banner at import; kvmplace never uses eventlet.
warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

# tests/nova runs in Nova's own environment with unittest (tools/nova-tests.sh):
# Nova is not installed in .venv, and Nova's TestCase does not survive
# pytest's unittest plugin at teardown.
collect_ignore = ['nova']
