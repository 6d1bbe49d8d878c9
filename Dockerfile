# Slim production image: the service only (no test extras), run as an unprivileged user.
# Build: docker build -t naltrexone-cds .      Run: docker run -p 8080:8080 -v $PWD/site.toml:/etc/cds/config.toml:ro naltrexone-cds
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY cards ./cards
COPY fixtures/patients ./fixtures/patients
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CDS_CONFIG=/etc/cds/config.toml
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/cds --create-home cds
WORKDIR /var/lib/cds
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# A config file is required in the image's default setup: auth is on and the service binds 0.0.0.0.
CMD ["cds-service", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
