# The tracker binary in a small image. Build: docker build -t tracker .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tracker

FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY web/pages pages
COPY web/assets assets

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/tracker tracker && mkdir -p /var/lib/tracker && chown tracker /var/lib/tracker
COPY --from=build /src/target/release/tracker /usr/local/bin/tracker
COPY --from=web /web /usr/share/tracker/web
USER tracker
WORKDIR /var/lib/tracker
ENV TRACKER_HTTP_ADDR=0.0.0.0:8080 TRACKER_MQTT_ADDR=0.0.0.0:1884 TRACKER_DATA_DIR=/var/lib/tracker/data \
    TRACKER_WEB_DIR=/usr/share/tracker/web
EXPOSE 8080 1884
ENTRYPOINT ["tracker"]
CMD ["run"]
