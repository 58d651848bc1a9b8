# Local stand-in for the official redis image (scripts/test-compose.sh builds it on machines that
# cannot pull from Docker Hub): Debian's redis-server and redis-cli, a `redis` user, and /data
# owned by it, which is what compose/docker-compose.yml's redis service relies on.
ARG DEBIAN_BASE
FROM ${DEBIAN_BASE}

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data \
    && chown redis:redis /data

VOLUME /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
