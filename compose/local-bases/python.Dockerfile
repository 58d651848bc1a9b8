# Local stand-in for python:3.11-slim, for machines that cannot pull from Docker Hub
# (scripts/test-compose.sh builds it). Debian bookworm's python3 is 3.11, as in the official image;
# a venv on PATH gives the same `python`/`pip` commands the project's Dockerfile relies on.
# The build context holds host-ca.crt: the host's CA bundle, so pip trusts the same authorities
# as the host (a registry behind an intercepting proxy is otherwise unreachable). HOST_PIP_INDEX:
# the host's pip index when it uses a mirror (empty: PyPI).
ARG DEBIAN_BASE
FROM ${DEBIAN_BASE}
ARG HOST_PIP_INDEX=

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/python \
    && if [ -n "$HOST_PIP_INDEX" ]; then \
        printf '[global]\nindex-url = %s\n' "$HOST_PIP_INDEX" > /etc/pip.conf; fi

COPY host-ca.crt /etc/ssl/certs/host-ca.crt
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/host-ca.crt \
    LANG=C.UTF-8
CMD ["python3"]
