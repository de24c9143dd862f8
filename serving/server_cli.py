"""``tfxformers serve``: the embedded TF-Serving-compatible model server on the command line.

Flags mirror ``tensorflow_model_server`` (dashes instead of underscores): ``--model-base`` (every
subdirectory is a model served with the latest-version policy) or ``--model-config-file``,
``--grpc-port`` / ``--rest-port`` (8500 / 8501), ``--enable-batching`` with
``--batching-parameters-file``, ``--monitoring-config-file``, ``--file-system-poll-wait-seconds``.
The process logs one ``serving N models on gRPC HOST:P, REST HOST:Q`` line when it is ready and stops
cleanly on SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse

READY_MESSAGE = "serving {models} models on gRPC {host}:{grpc}, REST {host}:{rest}"


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
    parser.add_argument("--enable-batching", action="store_true", help="batch concurrent requests server-side")
    parser.add_argument("--batching-parameters-file", help="BatchingParameters text proto (needs --enable-batching)")
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
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from tfxformers.serving.model_server import ModelServer

    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("tfxformers.serve")
    server = ModelServer(model_base=args.model_base, model_config_file=args.model_config_file,
                         grpc_port=args.grpc_port, rest_port=args.rest_port, host=args.host,
                         enable_batching=args.enable_batching, batching_parameters_file=args.batching_parameters_file,
                         monitoring_config_file=args.monitoring_config_file,
                         file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
                         intra_op_parallelism=args.tensorflow_intra_op_parallelism,
                         inter_op_parallelism=args.tensorflow_inter_op_parallelism,
                         model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        log.info(READY_MESSAGE.format(models=len(server.manager.configs), host=args.host, grpc=server.grpc_port,
                                      rest=server.rest_port))
        while not stop.wait(0.5):
            pass
        log.info("stopping")
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
