# The troupe image the Helm chart runs: `docker build -t troupe .`
# Build stage: Rust, plus what the sandbox's QuickJS guest needs (clang for wasm32 with WASI's libc).
FROM rust:1.95-trixie AS build
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends clang-19 lld-19 llvm-19 wasi-libc libclang-rt-19-dev-wasm32 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# after the copy: the target goes to the toolchain rust-toolchain.toml pins
RUN rustup target add wasm32-wasip1 && cargo build --release -p troupe && cp target/release/troupe /troupe

# Run stage: the binary alone. Troupe writes only under AP_CONFIG_PATH (/data).
FROM debian:trixie-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --home-dir /data --create-home troupe
COPY --from=build /troupe /usr/local/bin/troupe
USER 10001
ENV AP_CONFIG_PATH=/data AP_PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/troupe"]
CMD ["serve"]
