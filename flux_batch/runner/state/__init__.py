"""A run's crash-safe state in ``<out>/state.db``: the store and its write-ahead steps (``store``), the
questions asked of it without changing it (``queries``), and its schema as ordered migrations
(``migrations``)."""
