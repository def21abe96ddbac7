# The runtime image used by docker-compose.yml: the project and its Python dependencies.
FROM python:3.11-slim
WORKDIR /app
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
RUN pip install --no-cache-dir .
ENV CQRS_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["cqrs"]
