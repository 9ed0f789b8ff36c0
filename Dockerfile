# gifd compendium: JupyterLab with the pinned requirements (the same list as the venv and environment.yml).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    GIFD_CACHE=/home/gifd/.cache/gifd

RUN useradd --create-home --uid 1000 --shell /bin/bash gifd
WORKDIR /home/gifd/compendium

COPY requirements.txt requirements-nodeps.txt ./
RUN pip install -r requirements.txt \
    && pip install --no-deps -r requirements-nodeps.txt

COPY --chown=1000:1000 . .
RUN pip install --no-deps -e .

USER 1000
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser"]
