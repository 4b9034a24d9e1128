"""What the storage layers share: store URLs, SQLite connections and the file lock.

Neutral ground for :mod:`evento.event_stores`, :mod:`evento.consumer_stores`, the read models and the server's
data directory, so that none of them imports another for a helper.
"""
