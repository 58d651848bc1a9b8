"""The combat simulator: reproduces the original game's Redis keys and pub/sub traffic.

``roster`` (heroes) -> ``combat`` (pure rules, one game decided up front) -> ``writes`` (the game's
Redis commands, publishes through ``publish.RedisPublishHandler``) -> ``run`` (async driver,
``run_simulation``) -> ``command`` (the ``simulate`` CLI).
"""
