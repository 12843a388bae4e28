# The worker image of the Beam engine: Apache Beam's Python 3.11 SDK harness with tokenmill and
# its models/lists installed, so Dataflow, Flink and Spark workers run the same code as the
# driver. Build from the repository root and push where the workers can pull it:
#
#   docker build -t REGISTRY/tokenmill-beam:0.1.0 .
#   docker push REGISTRY/tokenmill-beam:0.1.0
#
# then run with --beam-option=--sdk_container_image=REGISTRY/tokenmill-beam:0.1.0
# (Dataflow) or --beam-option=--environment_type=DOCKER
# --beam-option=--environment_config=REGISTRY/tokenmill-beam:0.1.0 (Flink, Spark). The SDK
# version of the base image must equal the driver's apache-beam (2.77.0).
FROM apache/beam_python3.11_sdk:2.77.0

# torch first and pinned to the CPU wheel (an unpinned torch pulls the CUDA build; the corpus
# stages do not use it, the package imports do)
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /opt/tokenmill
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY pipelines ./pipelines
COPY flows ./flows
COPY trainer ./trainer
RUN pip install --no-cache-dir ".[gcp,aws]"

# The SDK harness entrypoint of the base image stays as is (ENTRYPOINT ["/opt/apache/beam/boot"]).
