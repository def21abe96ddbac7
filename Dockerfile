# The runtime image used by docker-compose.yml: the project and its Python dependencies.
# dedupe's index is compiled (a Rust crate, operators/native): a builder stage with the Rust
# toolchain builds the project's wheel (stable ABI, Python 3.11+; Debian 12's glibc, which the
# runtime's is at least), and the runtime stage installs it with no compiler in the image.
FROM rust:1-slim-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY core ./core
COPY commands ./commands
COPY dataflows ./dataflows
COPY operators ./operators
COPY sinks ./sinks
COPY deploy ./deploy
COPY cli ./cli
COPY examples ./examples
RUN python3 -m venv /build && /build/bin/pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim
WORKDIR /app
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV CQRS_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["cqrs"]
