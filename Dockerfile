FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md requirements.lock ./
COPY twilio_jobs ./twilio_jobs
COPY producer ./producer
COPY worker ./worker
COPY celeryconfig.py ./
RUN pip install -c requirements.lock ".[embedded]" && useradd --system --uid 10001 app
USER app
EXPOSE 8000
CMD ["twilio-jobs", "api", "--host", "0.0.0.0", "--port", "8000"]
