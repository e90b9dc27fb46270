# One image for the producer, the bootstrapper and the worker.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY shared shared
COPY producer producer
COPY worker worker
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["python", "-m"]
