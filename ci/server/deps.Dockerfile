# The tolu server's dependencies: a venv in /opt/tolu built from a host-made wheelhouse (--no-index),
# plus the non-root user. Tagged tolu-server-deps:<digest of base image + pinned requirements> by
# harness/container/image.py and rebuilt only when those change; ci/server/Dockerfile adds tolu on top.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
COPY wheels /wheels
RUN python3 -m venv /opt/tolu \
 && /opt/tolu/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /wheels/requirements.txt \
 && rm -rf /opt/tolu/lib/python3*/site-packages/pip /opt/tolu/lib/python3*/site-packages/setuptools \
 && mkdir -p /opt/tolu/app \
 && /opt/tolu/bin/python -c "import site; open(site.getsitepackages()[0] + '/tolu-app.pth', 'w').write('/opt/tolu/app\n')"

FROM ${BASE_IMAGE}
# one layer: the venv, the user, the data dir (vfs copies every layer in full: keep them few)
COPY --from=build /opt/tolu /opt/tolu
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home tolu \
 && mkdir -p /data && chown tolu:tolu /data
