# syntax=docker/dockerfile:1

# ---- Builder ---------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole workspace: sqlx::migrate! embeds migrations/ at compile time.
COPY . .
RUN cargo build --release --locked -p coderd \
 && install -m 0755 target/release/coderd /usr/local/bin/coderd

# ---- Runtime ---------------------------------------------------------------
FROM debian:bookworm-slim

# PostgreSQL's server binaries let the built-in database work when no
# CODER_PG_CONNECTION_URL is given; curl is for docker-compose's healthcheck.
# postgresql-common goes in first so the package's default "main" cluster is
# never created (the built-in database initdb's its own under the config dir).
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates curl postgresql-common; \
    sed -ri 's/^#?\s*create_main_cluster\s*=.*$/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; \
    rm -rf /var/lib/apt/lists/*; \
    test -x /usr/lib/postgresql/15/bin/initdb

RUN set -eux; \
    useradd --uid 1000 --user-group --create-home --home-dir /home/coder --shell /bin/bash coder; \
    install -d -o coder -g coder -m 0700 /home/coder/.config /home/coder/.config/coderd-rs

COPY --from=builder /usr/local/bin/coderd /usr/local/bin/coderd

# Agent binaries for workspaces' init scripts (served at /bin/): bake upstream's release
# binaries of the matching version in with a derived image, e.g.
#   FROM coderd-rs
#   COPY coder-linux-amd64 coder-linux-arm64 /opt/coder/bin/
# or mount a directory there.
RUN install -d -m 0755 /opt/coder/bin

ENV CODER_HTTP_ADDRESS=0.0.0.0:3000 \
    CODER_CONFIG_DIR=/home/coder/.config/coderd-rs \
    CODER_AGENT_BINARIES_DIR=/opt/coder/bin \
    PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

USER coder
WORKDIR /home/coder
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/coderd", "server"]
