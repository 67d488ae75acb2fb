# Multi-stage build: compile with the full Rust toolchain (librdkafka is built from source by
# rdkafka-sys, hence cmake and a C++ compiler, and links the system OpenSSL for TLS and SASL,
# found through pkg-config), run on a small Debian image.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin overreach && strip target/release/overreach

FROM debian:bookworm-slim
# libssl3 and ca-certificates for TLS to managed Kafka (SSL, SASL_SSL); nothing else is needed at run time.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/overreach --create-home overreach
COPY --from=build /src/target/release/overreach /usr/local/bin/overreach
USER overreach
WORKDIR /var/lib/overreach
EXPOSE 9464
ENTRYPOINT ["overreach"]
CMD ["run", "--http-addr", "0.0.0.0:9464", "--state", "/var/lib/overreach/state.snap"]
