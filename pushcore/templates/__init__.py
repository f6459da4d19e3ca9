"""Per-recipient content: Liquid templates in a send's notification, localizations picked by
the installation's language, rendered per recipient by the send workers.  Pure: no I/O.

``liquid`` is the sandbox (python-liquid with no loader, no ``include``/``render``, bounded
output, loop iterations and time); ``content`` compiles a message's notification and its
localizations once and renders one recipient's notification from a context (``context``);
``locale`` matches BCP 47 tags and checks IANA time zones.
"""
