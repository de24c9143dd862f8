"""``tfxformers serve``: the embedded TF-Serving-compatible model server on the command line.

Flags mirror ``tensorflow_model_server`` (dashes instead of underscores): ``--model-base`` (every
subdirectory is a model served with the latest-version policy) or ``--model-config-file``,
``--grpc-port`` / ``--rest-port`` (8500 / 8501), ``--enable-batching`` (each version's own
``batching_params.pbtxt``, or ``--batching-parameters-file`` for all), ``--monitoring-config-file``,
``--file-system-poll-wait-seconds``.
The request limits (``--max-request-bytes``, ``--max-rows``, ``--max-sequence-length``, ``--max-tokens``,
``--max-new-tokens``, ``--max-response-values``) are this server's own (``serving/server/limits.py``). The process
logs one ``serving N models on gRPC HOST:P, REST HOST:Q`` line when it is ready; on SIGTERM or SIGINT it
drains (``--drain-grace-seconds``; a second signal cuts the wait short) and exits 0. ``--in-flight-tokens``
and ``--in-flight-wait-seconds`` bound the work computed at once (``serving/server/admission.py``).
"""
from __future__ import annotations

import argparse

from tfxformers.errors import UserError
from tfxformers.serving.server.admission import DEFAULT_WAIT_SECONDS, default_tokens_in_flight
from tfxformers.serving.server.limits import ServerLimits

READY_MESSAGE = "serving {models} models on gRPC {host}:{grpc}, REST {host}:{rest}"
DRAIN_GRACE_SECONDS = 10.0


def register(commands, train_commands) -> None:
    parser = commands.add_parser(
        "serve", help="serve exported models with TF Serving's gRPC and REST APIs",
        description="Serve MODEL_BASE/NAME/<version>/ SavedModels with TensorFlow Serving's gRPC and REST APIs.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-base", help="directory of models (each subdirectory holds integer versions)")
    source.add_argument("--model-config-file", help="ModelServerConfig text proto (model_config_list)")
    parser.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (0 picks a free port; default 8500)")
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port (0 picks a free port; default 8501)")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--enable-batching", action="store_true",
                        help="batch concurrent requests server-side, with each version's own batching_params.pbtxt "
                             "(written by tfxformers export) unless --batching-parameters-file is given")
    parser.add_argument("--batching-parameters-file",
                        help="BatchingParameters text proto for every version, instead of their own files "
                             "(needs --enable-batching)")
    parser.add_argument("--monitoring-config-file",
                        help="MonitoringConfig text proto; enables Prometheus metrics on the REST port")
    parser.add_argument("--file-system-poll-wait-seconds", type=float, default=1.0,
                        help="how often to look for new versions (default 1; 0 = only at start)")
    parser.add_argument("--model-config-file-poll-wait-seconds", type=float, default=0,
                        help="re-read --model-config-file this often (default 0 = never)")
    parser.add_argument("--tensorflow-intra-op-parallelism", type=int, default=0,
                        help="threads per TensorFlow op (0 = TensorFlow's default: all cores)")
    parser.add_argument("--tensorflow-inter-op-parallelism", type=int, default=0,
                        help="TensorFlow ops run in parallel (0 = TensorFlow's default)")
    limits = parser.add_argument_group(
        "request limits", "checked before any tensor is built; a request over one is refused with INVALID_ARGUMENT "
                          "(HTTP 400), a body or message over --max-request-bytes with HTTP 413 / RESOURCE_EXHAUSTED")
    defaults = ServerLimits()
    limits.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes,
                        help="largest REST body and gRPC message (default %(default)s = 4 MiB)")
    limits.add_argument("--max-rows", type=int, default=defaults.max_rows,
                        help="rows (batch size) per request (default %(default)s)")
    limits.add_argument("--max-sequence-length", type=int, default=defaults.max_sequence_length,
                        help="tokens per row; a version's own maximum positions (assets.extra/tfxformers.json) lower "
                             "it (default %(default)s)")
    limits.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                        help="rows x tokens per row (for generate: rows x (prompt + max_new_tokens)) per request "
                             "(default %(default)s)")
    limits.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens,
                        help="largest max_new_tokens a generate request may ask for; a GPT-2 version's context minus "
                             "the prompt lowers it (default %(default)s)")
    limits.add_argument("--max-response-values", type=int, default=defaults.max_response_values,
                        help="values an answer may hold, predicted from the signature's output shapes (e.g. GPT-2 "
                             "logits: rows x tokens x vocabulary) (default %(default)s)")
    load = parser.add_argument_group(
        "load", "work in flight is bounded for the whole server (REST and gRPC together); a request that does not "
                "fit waits, then gets RESOURCE_EXHAUSTED (HTTP 429). SIGTERM drains: new model requests get "
                "UNAVAILABLE (HTTP 503), /readyz 503, the running ones finish, then the process exits 0")
    load.add_argument("--in-flight-tokens", type=int, default=None,
                      help="rows x tokens (generate: rows x sequences x (prompt + new tokens)) computed at once "
                           "(default: --max-tokens per 16 GiB of memory, at least one: %d here)"
                           % default_tokens_in_flight(defaults.max_tokens))
    load.add_argument("--in-flight-wait-seconds", type=float, default=DEFAULT_WAIT_SECONDS,
                      help="how long a request waits for room before its 429 (default %(default)s)")
    load.add_argument("--rest-read-timeout-seconds", type=float, default=5.0,
                      help="how long a REST request may take to arrive whole; slower clients are cut off "
                           "(default %(default)s)")
    load.add_argument("--drain-grace-seconds", type=float, default=DRAIN_GRACE_SECONDS,
                      help="on SIGTERM, how long running requests may take to finish (default %(default)s)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from tfxformers.serving.server.server import ModelServer

    limits = ServerLimits(max_request_bytes=args.max_request_bytes, max_rows=args.max_rows,
                          max_sequence_length=args.max_sequence_length, max_tokens=args.max_tokens,
                          max_new_tokens=args.max_new_tokens, max_response_values=args.max_response_values)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("tfxformers.serve")
    server = ModelServer(model_base=args.model_base, model_config_file=args.model_config_file,
                         grpc_port=args.grpc_port, rest_port=args.rest_port, host=args.host,
                         enable_batching=args.enable_batching, batching_parameters_file=args.batching_parameters_file,
                         monitoring_config_file=args.monitoring_config_file,
                         file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
                         intra_op_parallelism=args.tensorflow_intra_op_parallelism,
                         inter_op_parallelism=args.tensorflow_inter_op_parallelism,
                         model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
                         limits=limits, in_flight_tokens=args.in_flight_tokens,
                         in_flight_wait_seconds=args.in_flight_wait_seconds,
                         rest_read_timeout_seconds=args.rest_read_timeout_seconds)
    if args.drain_grace_seconds < 0:
        raise UserError("--drain-grace-seconds must be >= 0")
    stop, hurry = threading.Event(), threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            hurry.set()  # a second signal: stop without waiting for the rest of the grace period
        server.admission.start_drain()  # at once: /readyz answers 503 before the main loop wakes
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        log.info(READY_MESSAGE.format(models=len(server.manager.configs), host=args.host, grpc=server.grpc_port,
                                      rest=server.rest_port))
        while not stop.wait(0.5):
            pass
        running = server.admission.active
        log.info("draining: %d requests in progress, up to %g s for them to finish (--drain-grace-seconds)",
                 running, args.drain_grace_seconds)
        if not server.drain(args.drain_grace_seconds, hurry):
            log.warning("%d requests still running after the drain; stopping anyway", server.admission.active)
        log.info("stopping")
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
