"""Prometheus metrics of the embedded model server, named as TensorFlow Serving names them.

TF Serving turns its ``/tensorflow/serving/request_count`` style names into Prometheus names by replacing
``/`` with ``:`` (``prometheus_exporter.cc``), so users grep and alert on
``:tensorflow:serving:request_count``, ``:tensorflow:serving:request_latency_bucket`` and so on. The same
names (and label names) are used here:

* ``:tensorflow:serving:request_count{model_name,status}`` (status is the gRPC code name);
* ``:tensorflow:serving:request_latency`` histogram (microseconds) ``{model_name,API,entrypoint}``;
* ``:tensorflow:serving:runtime_latency`` histogram (microseconds) ``{model_name,API,runtime}``;
* ``:tensorflow:serving:batching_session:input_batch_size`` / ``processed_batch_size`` histograms and
  ``padding_size{execution_batch_size}``;
* ``:tensorflow:serving:model_warmup_records_read{model_path,status}`` and
  ``:tensorflow:serving:model_warmup_latency{model_path,status}``;
* ``:tensorflow:cc:saved_model:load_attempt_count{model_path,status}``;
* ``:tfxformers:serving:model_version_state{model_name,version,state}`` (1 for the current state; TF
  Serving has no such gauge, so it carries our own prefix).

Counters are exported untyped with their exact TF Serving names: prometheus_client's Counter would add a
``_total`` suffix that TF Serving's exporter does not have.
"""
from __future__ import annotations

import threading
from pathlib import Path

import tfxformers  # noqa: F401
from tfxformers.errors import UserError
from tfxformers.serving.server.config import config_messages

DEFAULT_PATH = "/monitoring/prometheus/metrics"
LATENCY_BUCKETS = tuple(10 * 1.8 ** i for i in range(33))  # TF Serving: Exponential(10, 1.8, 33)
BATCH_BUCKETS = tuple(float(2 ** i) for i in range(14))    # Exponential(1, 2, 14)
STATES = ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")


def monitoring_config_message():
    """TF Serving's MonitoringConfig message class (the serving-api wheel does not ship it)."""
    return config_messages()["MonitoringConfig"]


def read_monitoring_config(path) -> str | None:
    """Parse ``--monitoring-config-file``; the Prometheus path, or None when Prometheus is disabled."""
    from google.protobuf import text_format

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--monitoring-config-file {path} does not exist")
    try:
        config = text_format.Parse(path.read_text(), monitoring_config_message()())
    except text_format.ParseError as exc:
        raise UserError(f"{path} is not a MonitoringConfig text proto: {exc}") from None
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_PATH


class Metrics:
    """Thread-safe metric store with its own prometheus_client registry (one per server)."""

    def __init__(self):
        import prometheus_client
        from prometheus_client import CollectorRegistry, Histogram

        prometheus_client.disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple, float]] = {}
        self._counter_help = {
            ":tensorflow:serving:request_count": ("The total number of requests.", ("model_name", "status")),
            ":tensorflow:serving:model_warmup_records_read": (
                "Total number of warmup records read during model warmup.", ("model_path", "status")),
            ":tensorflow:cc:saved_model:load_attempt_count": (
                "The number of times a SavedModel was successfully loaded.", ("model_path", "status")),
        }
        self._states: dict[tuple, str] = {}
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ("model_name", "API", "entrypoint"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.runtime_latency = Histogram(
            ":tensorflow:serving:runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ("model_name", "API", "runtime"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.input_batch_size = Histogram(
            ":tensorflow:serving:batching_session:input_batch_size",
            "Tracks the batch size distribution on the inputs.", buckets=BATCH_BUCKETS, registry=self.registry)
        self.processed_batch_size = Histogram(
            ":tensorflow:serving:batching_session:processed_batch_size",
            "Tracks the batch size distribution on processing.", buckets=BATCH_BUCKETS, registry=self.registry)
        self.padding_size = Histogram(
            ":tensorflow:serving:batching_session:padding_size",
            "Tracks the padding size distribution on batches.", ("execution_batch_size",),
            buckets=BATCH_BUCKETS, registry=self.registry)
        self.warmup_latency = Histogram(
            ":tensorflow:serving:model_warmup_latency",
            "Distribution of wall time (in microseconds) for warming up the model.", ("model_path", "status"),
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_Collector(self))

    # ---- recording
    def _inc(self, name: str, labels: tuple, by: float = 1) -> None:
        with self._lock:
            cells = self._counters.setdefault(name, {})
            cells[labels] = cells.get(labels, 0) + by

    def request(self, model_name: str, status: str, api: str, entrypoint: str, seconds: float | None) -> None:
        self._inc(":tensorflow:serving:request_count", (model_name, status))
        if seconds is not None and status == "OK":
            self.request_latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def runtime(self, model_name: str, api: str, seconds: float) -> None:
        self.runtime_latency.labels(model_name, api, "TF1").observe(seconds * 1e6)

    def batch(self, input_sizes: list[int], processed: int, padding: int) -> None:
        for size in input_sizes:
            self.input_batch_size.observe(size)
        self.processed_batch_size.observe(processed)
        self.padding_size.labels(str(processed)).observe(padding)

    def warmup(self, model_path: str, status: str, records: int, seconds: float) -> None:
        self._inc(":tensorflow:serving:model_warmup_records_read", (model_path, status), records)
        self.warmup_latency.labels(model_path, status).observe(seconds * 1e6)

    def load_attempt(self, model_path: str, status: str) -> None:
        self._inc(":tensorflow:cc:saved_model:load_attempt_count", (model_path, status))

    def version_state(self, model_name: str, version: int, state: str) -> None:
        with self._lock:
            self._states[(model_name, str(version))] = state

    # ---- reading
    def counter(self, name: str, labels: tuple) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(labels, 0)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _Collector:
    """Exports the untyped counters and the version-state gauge from the Metrics store."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily

        m = self.metrics
        with m._lock:
            counters = {name: dict(cells) for name, cells in m._counters.items()}
            states = dict(m._states)
        for name, (doc, label_names) in m._counter_help.items():
            family = UnknownMetricFamily(name, doc, labels=label_names)
            for labels, value in sorted(counters.get(name, {}).items()):
                family.add_metric(list(labels), value)
            yield family
        gauge = GaugeMetricFamily(":tfxformers:serving:model_version_state",
                                  "1 for the state each model version is in.",
                                  labels=("model_name", "version", "state"))
        for (name, version), current in sorted(states.items()):
            for state in STATES:
                gauge.add_metric([name, version, state], 1.0 if state == current else 0.0)
        yield gauge
