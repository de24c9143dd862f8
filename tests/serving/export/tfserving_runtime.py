"""Run inside the TF Serving release's runtime (``.venv-tfserving``: TF 2.20 + TF Text 2.20), not by pytest.

    python tfserving_runtime.py MANIFEST.json OUT_DIR

For each export in the manifest (``{"name": ..., "dir": ..., "inputs": {signature: inputs.npz}}``): the ops
of its graph and of every function in its library, checked against this runtime's op registry (TF core
plus the TF Text ops, as the stock model server links them) with each node's attributes against the op's
definition here (a newer writer may add an attribute an older runtime rejects); then the SavedModel
loaded the way the model server loads it (a TF1 session with the ``serve`` tag, variables restored, init
op run), its warm-up records replayed (``assets.extra/tf_serving_warmup_requests``: the server replays
them at load, and a failing one fails the load), and every signature run from its SignatureDef's tensor
names. Writes ``OUT_DIR/report.json`` and ``OUT_DIR/<name>.<signature>.npz``. Needs only that runtime's
packages (requirements/tfserving.lock), not the project.
"""
import json
import sys
import traceback
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the TF Text ops, which the stock server links)
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
from tensorflow_serving.apis import prediction_log_pb2

# Registered in TF core, but their kernels call back into Python, which the model server does not have.
NEEDS_PYTHON = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def graph_nodes(meta_graph):
    yield from meta_graph.graph_def.node
    for function in meta_graph.graph_def.library.function:
        yield from function.node_def


def check_ops(export_dir: Path) -> dict:
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    ops, unknown_ops, unknown_attrs, must_compile = set(), set(), set(), []
    for meta_graph in saved.meta_graphs:
        for function in meta_graph.graph_def.library.function:
            # jit_compile=True: the model server refuses it unless started with an experimental XLA flag.
            if function.attr["_XlaMustCompile"].b:
                must_compile.append(function.signature.name)
        for node in graph_nodes(meta_graph):
            ops.add(node.op)
            op_def = op_def_registry.get(node.op)
            if op_def is None:
                # A call of a function of the library is a node whose op is the function's name.
                if node.op not in {f.signature.name for f in meta_graph.graph_def.library.function}:
                    unknown_ops.add(node.op)
                continue
            if node.op in NEEDS_PYTHON:
                unknown_ops.add(node.op)
            known = {a.name for a in op_def.attr}
            unknown_attrs.update(f"{node.op}.{a}" for a in node.attr if not a.startswith("_") and a not in known)
    functions = {f.signature.name for m in saved.meta_graphs for f in m.graph_def.library.function}
    return {"ops": sorted(ops - functions), "unknown_ops": sorted(unknown_ops), "unknown_attrs": sorted(unknown_attrs),
            "xla_must_compile": sorted(must_compile), "writer": saved.meta_graphs[0].meta_info_def.tensorflow_version}


def run(session, signature, inputs: dict) -> dict:
    feed = {signature.inputs[key].name: value for key, value in inputs.items()}
    return session.run({key: info.name for key, info in signature.outputs.items()}, feed)


def replay_warmup(session, meta_graph, export_dir: Path) -> int:
    path = export_dir / "assets.extra" / "tf_serving_warmup_requests"
    if not path.is_file():
        return 0
    count = 0
    for record in tf.compat.v1.io.tf_record_iterator(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        signature = meta_graph.signature_def[request.model_spec.signature_name or "serving_default"]
        run(session, signature, {key: tf.make_ndarray(tensor) for key, tensor in request.inputs.items()})
        count += 1
    return count


def run_signatures(export_dir: Path, inputs: dict, out_dir: Path, name: str, entry: dict) -> dict:
    ran = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
        entry["warmup_records"] = replay_warmup(session, meta_graph, export_dir)
        for signature_name, npz in inputs.items():
            signature = meta_graph.signature_def[signature_name]
            with np.load(npz, allow_pickle=False) as arrays:
                outputs = run(session, signature, {key: arrays[key] for key in signature.inputs})
            np.savez(out_dir / f"{name}.{signature_name}.npz", **outputs)
            ran[signature_name] = sorted(outputs)
    return ran


def main(manifest_path: str, out: str) -> int:
    out_dir = Path(out)
    report = {"tensorflow": tf.__version__, "tensorflow_text": tensorflow_text.__version__, "exports": {}}
    for export in json.loads(Path(manifest_path).read_text()):
        entry = {}
        export_dir = Path(export["dir"])
        entry.update(check_ops(export_dir))
        try:
            entry["signatures"] = run_signatures(export_dir, export["inputs"], out_dir, export["name"], entry)
        except Exception:  # the report says which export failed and why; the test shows it
            entry["load_error"] = traceback.format_exc(limit=3)
        report["exports"][export["name"]] = entry
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
