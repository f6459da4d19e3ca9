"""Providers: APNs, FCM and Web Push as pure request builders and response classifiers.

Nothing in this package does I/O; :mod:`pushcore.transport` moves the bytes and
:mod:`pushcore.fanout.delivery` joins the two.  :mod:`~pushcore.providers.base` holds the
contract (``Provider``, ``Registration``, ``Result``, ``Outcome``),
:mod:`~pushcore.providers.notification` the notification's common fields, one module per
provider renders it, builds requests and classifies answers by table, and
:mod:`~pushcore.providers.registry` is the one table of platforms that everything else
iterates.
"""
