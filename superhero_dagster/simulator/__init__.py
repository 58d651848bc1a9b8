"""The combat simulator: reproduces the original game's Redis keys and pub/sub traffic.

``roster`` (heroes) -> ``combat`` (pure rules, one game decided up front, the original's quirks
included) -> ``writes`` (the game's Redis commands, publishes through
``publish.RedisPublishHandler``, the clean-up worker of ``cleanup``) -> ``run`` (async driver,
``run_simulation``, counted in ``summary``) -> ``command`` (the ``simulate`` CLI).
"""
