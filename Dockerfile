# The tracker binary in a small image. Build: docker build -t tracker .
# (--build-arg TRACKER_COMMIT=$(git rev-parse --short=12 HEAD) names the commit
# in `tracker --version`; the build context has no .git.)

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
RUN TRACKER_COMMIT=$TRACKER_COMMIT cargo build --release --locked --bin tracker

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/tracker tracker && mkdir -p /var/lib/tracker && chown tracker /var/lib/tracker
COPY --from=build /src/target/release/tracker /usr/local/bin/tracker
USER tracker
WORKDIR /var/lib/tracker
ENV TRACKER_HTTP_ADDR=0.0.0.0:8080 TRACKER_MQTT_ADDR=0.0.0.0:1884 TRACKER_DATA_DIR=/var/lib/tracker/data
EXPOSE 8080 1884
ENTRYPOINT ["tracker"]
CMD ["run"]
