# One image for the console, the customer backend and the command-line tools (and the
# sandbox, for a trial without Kryptos credentials). compose.yaml runs it as every replica;
# the command says which process a container is:
#   console   python -m dashboard.serve --server.address 0.0.0.0 ... (streamlit run)
#   backend   python -m backend --host 0.0.0.0 --port 8000 --proxy-headers ...
#   CLIs      python -m dashboard.users ..., python -m services.store ...
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONSOLE_DATA_DIR=/data

WORKDIR /app

# The pinned runtime requirements first: this layer is rebuilt only when they change.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml ./
COPY services ./services
COPY dashboard ./dashboard
COPY pages ./pages
COPY backend ./backend
COPY sandbox ./sandbox
COPY .streamlit/config.toml ./.streamlit/config.toml
RUN pip install --no-deps .

# An unprivileged user owning only its data folders (0700: services/private_files.py
# reports looser modes). /data: the replica's own files; /srv/users: the users file that
# every console replica shares (a volume).
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin console \
    && mkdir -p /data /srv/users \
    && chown console /data /srv/users \
    && chmod 0700 /data /srv/users
USER console

EXPOSE 8501 8000
CMD ["python", "-m", "dashboard.serve", "--server.address", "0.0.0.0", "--server.port", "8501", "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
