# Release image: build on Debian bookworm, run on bookworm-slim with only the shared libraries
# the binary links (OpenSSL, libxml2, xmlsec1), as the non-root user 65532.
#   docker build -t sso-operator:0.1.0 .
# From a binary already built on a Debian bookworm host (`cargo build --release --locked`),
# only the runtime stage is built (the Rust image is not needed):
#   docker build --target prebuilt -t sso-operator:0.1.0 .
# The base images are build arguments, for mirrors and for hosts that build their own Debian
# bookworm base (tests/image/build does, when no registry can be reached).
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
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

# What runs in the pods, without the binary: the stages below add it.
FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libxml2 libxmlsec1 libxmlsec1-openssl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && mkdir -p /var/lib/sso-operator \
 && chown 65532:65532 /var/lib/sso-operator
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/sso-operator"]
CMD ["run"]

# The runtime stage with a binary from the build context (a path relative to it).
FROM runtime AS prebuilt
ARG BINARY=target/release/sso-operator
COPY ${BINARY} /usr/local/bin/sso-operator

# The default: the runtime stage with the binary built in the build stage.
FROM runtime AS release
COPY --from=build /src/target/release/sso-operator /usr/local/bin/sso-operator
