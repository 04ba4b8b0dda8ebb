"""Sphinx configuration for the kvmplace documentation."""
import warnings

warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

project = 'kvmplace'
copyright = 'kvmplace developers'
extensions = [
    'oslo_config.sphinxext',
    'stevedore.sphinxext',
]
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
pygments_style = 'sphinx'
nitpicky = False
# The configuration reference and the plugin list are generated from the
# code (oslo_config.sphinxext, stevedore.sphinxext): never hand-written.
