"""Test-wide settings."""
import warnings

# oslo.messaging imports oslo.service, whose eventlet backend prints a
# deprecation banner at import; kvmplace never uses eventlet.
warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')
