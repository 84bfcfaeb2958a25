FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY providers ./providers
RUN pip install . && useradd --system --uid 10001 --no-create-home bot

USER bot
EXPOSE 8080
CMD ["python", "-m", "bot"]
