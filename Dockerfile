# syntax=docker/dockerfile:1
# The tracker binary in a small image, run as a non-root user.
#   docker build -t tracker --build-arg TRACKER_COMMIT=$(git rev-parse --short=12 HEAD) .
# (the build context has no .git: the argument names the commit in `tracker --version`).

# Leaflet for the pages, which the build puts into the binary.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=web /web/node_modules web/node_modules
ARG TRACKER_COMMIT=unknown
# Downloaded crates and compiled dependencies stay in BuildKit's caches
# between builds, so a change to the sources compiles only the workspace.
# No debug info and stripped symbols in the image (the release profile
# keeps them for profiling on a workstation).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    TRACKER_COMMIT=$TRACKER_COMMIT CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --bin tracker \
    && cp target/release/tracker /usr/local/bin/tracker

FROM debian:bookworm-slim
# The data folder belongs to the user the process runs as, so a volume
# mounted there (created from the image's folder) is writable by it.
RUN useradd --system --uid 10001 --home /var/lib/tracker tracker \
    && mkdir -p /var/lib/tracker/data && chown -R tracker /var/lib/tracker
COPY --from=build /usr/local/bin/tracker /usr/local/bin/tracker
USER 10001
WORKDIR /var/lib/tracker
ENV TRACKER_HTTP_ADDR=0.0.0.0:8080 TRACKER_MQTT_ADDR=0.0.0.0:1884 TRACKER_DATA_DIR=/var/lib/tracker/data
VOLUME /var/lib/tracker/data
EXPOSE 8080 1884
ENTRYPOINT ["tracker"]
CMD ["run"]
