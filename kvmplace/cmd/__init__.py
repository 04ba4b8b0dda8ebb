"""Console scripts. Each is a few lines: parse, configure, hand over."""
import warnings

# oslo.messaging imports oslo.service, which prints eventlet's deprecation
# banner on import; kvmplace never uses eventlet (threading executor).
warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')
warnings.filterwarnings('ignore', message='.*eventletutils module is deprecated.*')
warnings.filterwarnings('ignore', message='.*eventlet_backdoor.*')
