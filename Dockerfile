# The one Lambda image of the pipeline (docs/adr/0002-one-container-image.md).
# Every function runs this image with its own command (stages.<stage>.handler.handler), set by
# the CDK stack; the image therefore has no CMD of its own.
FROM public.ecr.aws/lambda/python:3.12

# The runtime lock is compiled for this image: Python 3.12 on manylinux_2_28 x86_64
# (`make lock`; `make image-check` installs it the same way and imports every handler).
COPY requirements.lock ${LAMBDA_TASK_ROOT}/
RUN pip install --no-cache-dir --only-binary=:all: \
        --target "${LAMBDA_TASK_ROOT}" -r "${LAMBDA_TASK_ROOT}/requirements.lock" \
    && rm "${LAMBDA_TASK_ROOT}/requirements.lock"

COPY common/ ${LAMBDA_TASK_ROOT}/common/
COPY stages/ ${LAMBDA_TASK_ROOT}/stages/
# The task root is read-only at run time, so Python could never cache our modules' bytecode there:
# compile it into the image once instead of on every cold start.
RUN python -m compileall -q -j 0 "${LAMBDA_TASK_ROOT}/common" "${LAMBDA_TASK_ROOT}/stages"
