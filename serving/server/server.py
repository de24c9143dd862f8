"""The embedded TF-Serving-compatible model server: a ``ModelManager`` behind the gRPC and REST front ends.

``ModelServer`` checks its arguments (the CLI's flags), reads the config files, and composes the pieces:
the manager (versions, loading), the batching parameters, the metrics, the request limits, the admission
gate (in-flight budget and drain, shared by both front ends), and the two front ends, which depend on the
manager and never the reverse.
"""
from __future__ import annotations

import logging

import tfxformers  # noqa: F401
from tfxformers.errors import UserError
from tfxformers.serving.server.admission import DEFAULT_WAIT_SECONDS, Admission, default_tokens_in_flight
from tfxformers.serving.server.batching import BatchingChoice
from tfxformers.serving.server.config import configs_from_config_file, configs_from_model_base
from tfxformers.serving.server.errors import ServingError
from tfxformers.serving.server.limits import ServerLimits
from tfxformers.serving.server.manager import ModelManager
from tfxformers.serving.server.metrics import Metrics, read_monitoring_config

log = logging.getLogger("tfxformers.serve")


class ModelServer:
    """An embedded TF-Serving-compatible server. Ports 0 pick free ports; ``start()`` returns when the
    start-up versions are loaded and both front ends listen; ``stop()`` shuts everything down.
    ``limits`` (``serving.server.limits.ServerLimits``, default: the CLI's defaults) bound what one request may ask.

    >>> server = ModelServer(model_base="serving_models", grpc_port=0, rest_port=0, host="127.0.0.1")
    >>> server.start(); server.grpc_port, server.rest_port
    """

    def __init__(self, model_base=None, model_config_file=None, grpc_port: int = 8500, rest_port: int = 8501,
                 host: str = "0.0.0.0", enable_batching: bool = False, batching_parameters_file=None,
                 monitoring_config_file=None, file_system_poll_wait_seconds: float = 1.0,
                 grpc_max_workers: int = 32, intra_op_parallelism: int = 0, inter_op_parallelism: int = 0,
                 model_config_file_poll_wait_seconds: float = 0, limits=None, in_flight_tokens: int | None = None,
                 in_flight_wait_seconds: float = DEFAULT_WAIT_SECONDS, rest_read_timeout_seconds: float = 5.0):
        if (model_base is None) == (model_config_file is None):
            raise UserError("give exactly one of --model-base or --model-config-file")
        if file_system_poll_wait_seconds is not None and file_system_poll_wait_seconds < 0:
            raise UserError("--file-system-poll-wait-seconds must be >= 0 (0 disables polling)")
        for flag, port in (("--grpc-port", grpc_port), ("--rest-port", rest_port)):
            if not 0 <= int(port) <= 65535:
                raise UserError(f"{flag} {port} is not a TCP port")
        if batching_parameters_file is not None and not enable_batching:
            raise UserError("--batching-parameters-file needs --enable-batching")
        configs = (configs_from_config_file(model_config_file) if model_config_file is not None
                   else configs_from_model_base(model_base))
        self.batching = BatchingChoice(batching_parameters_file) if enable_batching else None
        self.prometheus_path = (read_monitoring_config(monitoring_config_file)
                                if monitoring_config_file is not None else None)
        self.metrics = Metrics()
        self.limits = limits if limits is not None else ServerLimits()
        if in_flight_tokens is None:
            in_flight_tokens = default_tokens_in_flight(self.limits.max_tokens)
        elif in_flight_tokens < self.limits.max_tokens:
            raise UserError(f"--in-flight-tokens {in_flight_tokens} is below --max-tokens "
                            f"{self.limits.max_tokens}: a request at the limit could never run")
        self.admission = Admission(in_flight_tokens, in_flight_wait_seconds)
        if not rest_read_timeout_seconds > 0:
            raise UserError("--rest-read-timeout-seconds must be > 0")
        self.rest_read_timeout = float(rest_read_timeout_seconds)
        self.manager = ModelManager(configs, file_system_poll_wait_seconds, self.batching, self.metrics)
        self.host, self._grpc_port, self._rest_port = host, int(grpc_port), int(rest_port)
        self.grpc_max_workers = grpc_max_workers
        if intra_op_parallelism < 0 or inter_op_parallelism < 0:
            raise UserError("--tensorflow-*-op-parallelism must be >= 0 (0 lets TensorFlow choose)")
        self.parallelism = (int(intra_op_parallelism), int(inter_op_parallelism))
        if model_config_file_poll_wait_seconds and model_config_file is None:
            raise UserError("--model-config-file-poll-wait-seconds needs --model-config-file")
        if model_config_file_poll_wait_seconds < 0:
            raise UserError("--model-config-file-poll-wait-seconds must be >= 0")
        self.model_config_file = model_config_file
        self.config_poll = float(model_config_file_poll_wait_seconds or 0)
        self.grpc_port = self.rest_port = None
        self._grpc = self._rest = None

    def start(self) -> "ModelServer":
        # The front ends import TensorFlow Serving's protos (and so TensorFlow): only a started server needs them.
        from tfxformers.serving.server.grpc_api import start_grpc_server
        from tfxformers.serving.server.rest_server import start_rest_server

        self._set_parallelism()
        self.manager.start()
        try:
            self.manager.check_labels()
        except ServingError as exc:
            self.manager.stop()
            raise UserError(f"{self.model_config_file}: {exc.message}") from None
        if self.config_poll > 0:
            self.manager.watch_config_file(self.model_config_file, self.config_poll)
        try:
            self._grpc, self.grpc_port = start_grpc_server(self.manager, self.metrics, self.host, self._grpc_port,
                                                           self.grpc_max_workers, self.limits, self.admission)
            self._rest, self.rest_port = start_rest_server(self.manager, self.metrics, self.host, self._rest_port,
                                                           self.prometheus_path, self.limits, self.admission,
                                                           self.rest_read_timeout)
        except (OSError, RuntimeError) as exc:  # grpc raises RuntimeError when it cannot bind
            self.stop()
            raise UserError(f"cannot listen on {self.host} (gRPC port {self._grpc_port}, REST port "
                            f"{self._rest_port}): {exc}; is another server running there?") from None
        return self

    def _set_parallelism(self) -> None:
        """TF Serving's --tensorflow_{intra,inter}_op_parallelism; only possible before TF's runtime starts."""
        intra, inter = self.parallelism
        if not intra and not inter:
            return
        import tensorflow as tf

        try:
            if intra:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            if inter:
                tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError:
            log.warning("TensorFlow is already initialised in this process; op parallelism flags ignored")

    def drain(self, grace_seconds: float, interrupted=None) -> bool:
        """Refuse new model requests (503 / UNAVAILABLE, ``/readyz`` 503) and wait up to ``grace_seconds``
        for the ones in progress; True when they all finished. ``stop()`` afterwards."""
        self.admission.start_drain()
        return self.admission.wait_idle(grace_seconds, interrupted)

    def stop(self) -> None:
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
            self._grpc = None
        self.manager.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
