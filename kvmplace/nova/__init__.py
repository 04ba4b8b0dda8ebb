"""kvmplace inside nova-scheduler: a Nova filter and a Nova weigher.

``kvmplace.nova.scheduler`` needs Nova (install ``kvmplace[nova]`` next to
nova-scheduler); ``kvmplace.nova.conf`` and ``kvmplace.nova.adapter`` import
Nova only when used, so importing kvmplace never requires it.
See doc/source/user/nova.rst.
"""
