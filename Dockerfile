# Release image: build on Debian bookworm, run on bookworm-slim with only the shared libraries
# the binary links (OpenSSL, libxml2, xmlsec1), as the non-root user 65532.
#   docker build -t sso-operator:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev libclang-dev libxmlsec1-dev libxml2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin sso-operator \
 && strip target/release/sso-operator

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libxml2 libxmlsec1 libxmlsec1-openssl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/sso-operator \
 && chown 65532:65532 /var/lib/sso-operator
COPY --from=build /src/target/release/sso-operator /usr/local/bin/sso-operator
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/sso-operator"]
CMD ["run"]
