"""Side-by-side comparison of trained classifiers (and a TF-IDF baseline) on one test split.

``compare_runs([run_dir, ...], output=DIR, baseline="tfidf")`` evaluates every run on the same test texts
and writes ``DIR/report.md``, ``DIR/report.json``, ``DIR/confusion_matrices.png`` and ``DIR/scores.png``:

* accuracy and macro-F1 with 95% bootstrap intervals (percentile; the same resampled index sets for
  every model, so the intervals are comparable), per-class precision / recall / F1 (the classification
  report) and the confusion matrices;
* a McNemar test for each pair of models on the texts exactly one of them gets right: exact two-sided
  binomial when those discordant texts number fewer than 25, else chi-square with continuity correction;
* how many texts the models disagree on, with a few examples;
* model size (parameters, bytes on disk), training time (``metrics.json["train_seconds"]``) and latency at
  batch 1: the run exported as ``tfxformers export`` would (``serving.export.trained.write_trained``'s graph
  is not importable from ``models/``, so the same ``serving_default`` computation, a ``tf.function`` with
  the batching-safe mask, is traced here) and timed in-process on single test texts, tokenization
  included; no network, so it is the model's share of a served request.

``compare_predictions`` is the numeric core (labels + predictions in, report dict out) and imports no
TensorFlow; ``mcnemar`` and ``bootstrap_intervals`` are usable alone.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

import tfxformers  # noqa: F401
from tfxformers.errors import UserError
from tfxformers.models.buckets import buckets_up_to

EXACT_BELOW = 25  # discordant pairs: below this the chi-square approximation is poor


def mcnemar(labels, a, b) -> dict:
    """McNemar's test of ``a`` vs ``b`` (predicted class ids) against the true ``labels``."""
    labels, a, b = map(np.asarray, (labels, a, b))
    right_a, right_b = a == labels, b == labels
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    n = only_a + only_b
    if n == 0:
        method, statistic, p = "none (no discordant texts)", 0.0, 1.0
    elif n < EXACT_BELOW:
        k = min(only_a, only_b)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
        method, statistic, p = "exact binomial", float(k), min(1.0, 2 * tail)
    else:
        statistic = (abs(only_a - only_b) - 1) ** 2 / n
        method, p = "chi-square, continuity-corrected", math.erfc(math.sqrt(statistic / 2))  # chi2(1) tail
    return {"only_a_right": only_a, "only_b_right": only_b, "both_right": int(np.sum(right_a & right_b)),
            "both_wrong": int(np.sum(~right_a & ~right_b)), "method": method, "statistic": float(statistic),
            "p_value": float(p)}


def _accuracy_and_macro_f1(labels: np.ndarray, predictions: np.ndarray, k: int) -> tuple[float, float]:
    cm = np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k).astype(np.float64)
    tp = np.diag(cm)
    precision = np.divide(tp, cm.sum(axis=0), out=np.zeros(k), where=cm.sum(axis=0) > 0)
    recall = np.divide(tp, cm.sum(axis=1), out=np.zeros(k), where=cm.sum(axis=1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    return float(tp.sum() / max(len(labels), 1)), float(f1.mean())


def bootstrap_intervals(labels, predictions: dict, num_labels: int, *, samples: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict:
    """``{name: {"accuracy": [low, high], "macro_f1": [low, high]}}`` from ``samples`` resamples of the
    texts with replacement (the same resamples for every model)."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(labels), size=(samples, len(labels)))
    tail = (1 - level) / 2 * 100
    out = {}
    for name, pred in predictions.items():
        pred = np.asarray(pred, dtype=np.int64)
        values = np.array([_accuracy_and_macro_f1(labels[d], pred[d], num_labels) for d in draws])
        low, high = np.percentile(values, [tail, 100 - tail], axis=0)
        out[name] = {"accuracy": [float(low[0]), float(high[0])], "macro_f1": [float(low[1]), float(high[1])]}
    return out


def compare_predictions(labels, predictions: dict, label_names: list[str], texts: list[str] | None = None, *,
                        bootstrap: int = 1000, seed: int = 0, examples: int = 5) -> dict:
    """The comparison of already-made predictions: per-model metrics with intervals, pairwise McNemar
    tests and disagreements. ``predictions`` maps model names to class-id arrays in text order."""
    from tfxformers.models.classification.train import classification_metrics

    labels = np.asarray(labels, dtype=np.int64)
    if len(predictions) < 1:
        raise UserError("nothing to compare: give at least one run (and/or --baseline tfidf)")
    k = len(label_names)
    models = {}
    for name, pred in predictions.items():
        pred = np.asarray(pred, dtype=np.int64)
        if pred.shape != labels.shape:
            raise ValueError(f"{name}: {pred.shape[0]} predictions for {labels.shape[0]} labels")
        models[name] = classification_metrics(labels, np.eye(k)[pred], label_names)
    intervals = bootstrap_intervals(labels, predictions, k, samples=bootstrap, seed=seed) if bootstrap else {}
    for name, interval in intervals.items():
        models[name]["accuracy_ci"] = interval["accuracy"]
        models[name]["macro_f1_ci"] = interval["macro_f1"]
    names = list(predictions)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            test = mcnemar(labels, predictions[a], predictions[b])
            test.update(a=a, b=b, disagree=int(np.sum(np.asarray(predictions[a]) != np.asarray(predictions[b]))))
            pairs.append(test)
    stacked = np.stack([np.asarray(predictions[n]) for n in names])
    disagree = np.flatnonzero((stacked != stacked[0]).any(axis=0))
    rng = np.random.default_rng(seed)
    shown = sorted(rng.choice(disagree, size=min(examples, len(disagree)), replace=False).tolist()) if len(disagree) else []
    return {
        "examples": int(len(labels)), "label_names": list(label_names), "models": models, "pairs": pairs,
        "bootstrap": {"samples": bootstrap, "seed": seed, "level": 0.95, "method": "percentile"},
        "disagreements": {
            "count": int(len(disagree)),
            "examples": [{"index": int(i), "text": texts[i] if texts else None, "true": label_names[labels[i]],
                          "predicted": {n: label_names[int(predictions[n][i])] for n in names}} for i in shown],
        },
    }


# --- running the models ------------------------------------------------------------------------------

def _unique_names(run_dirs: list[Path]) -> list[str]:
    names = [p.name or str(p) for p in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in run_dirs]


def _check_runs(run_dirs: list[Path]) -> list[dict]:
    from tfxformers.models import artifacts

    infos = []
    for path in run_dirs:
        info = artifacts.read_info(path)
        if info["kind"] != "classifier":
            raise UserError(f"{path} holds a {info['kind']} model; compare works on classifiers")
        infos.append(info)
    first = infos[0]["label_names"]
    for path, info in zip(run_dirs, infos):
        if info["label_names"] != first:
            raise UserError(f"{path} predicts labels {info['label_names']}, {run_dirs[0]} predicts {first}: "
                            "models compared on one test split must share their labels")
    return infos


def _data_source(run_dirs: list[Path], infos: list[dict], data: str | None) -> tuple[str, str, str]:
    if data is not None:
        return data, "text", "label"
    sources = {(i.get("data"), i.get("text_column", "text"), i.get("label_column", "label")) for i in infos}
    if len(sources) != 1 or None in next(iter(sources)):
        listed = "; ".join(f"{p}: {i.get('data')}" for p, i in zip(run_dirs, infos))
        raise UserError(f"the runs were not all trained on one recorded data set ({listed}); pass --data")
    return next(iter(sources))


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _count_weights(weights) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def trained_parameters(keras_model, info: dict) -> int:
    """Parameters the run's training changed: the head for frozen / hub, the top ``trainable_layers`` blocks
    and the head for partial (its saved model is an ordinary fine-tune architecture, all marked trainable),
    every trainable weight for finetune."""
    mode = info.get("mode")
    if mode not in ("frozen", "hub", "partial"):
        return _count_weights(keras_model.trainable_weights)
    from tfxformers.models.classification.attention import encoder_layer

    try:
        main = encoder_layer(keras_model)
    except UserError:  # hub: the encoder is a SavedModel layer
        main = next(layer for layer in keras_model.layers if hasattr(layer, "resolved_object"))
    head = _count_weights(keras_model.weights) - _count_weights(main.weights)
    if mode != "partial":
        return head
    from tfxformers.models import encoders

    blocks = encoders.family_module(main).layers(main)
    return head + sum(_count_weights(b.weights) for b in blocks[-int(info.get("trainable_layers") or 0):])


def _latency_ms(trained, texts: list[str], samples: int) -> dict | None:
    """Median and 90th percentile of one text through tokenization + the serving computation."""
    if samples <= 0:
        return None
    import tensorflow as tf

    from tfxformers.models.tokenization import tokenize_batch

    model = trained.keras_model
    sep_id = trained.tokenizer.sep_token_id

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.int32)],
                 autograph=False)
    def serve(input_ids, attention_mask):
        # serving.export.classifier's serving_default: mask limited to the first [SEP], softmax and argmax on top.
        is_sep = tf.cast(tf.equal(input_ids, sep_id), tf.int32)
        last = tf.where(tf.reduce_any(is_sep > 0, axis=1), tf.argmax(is_sep, axis=1, output_type=tf.int32),
                        tf.shape(input_ids)[1] - 1)
        mask = attention_mask * tf.cast(tf.range(tf.shape(input_ids)[1])[None, :] <= last[:, None], tf.int32)
        logits = model({"input_ids": input_ids, "attention_mask": mask}, training=False)
        return tf.nn.softmax(logits, axis=-1), tf.argmax(logits, axis=-1, output_type=tf.int32)

    def one(text):
        features = tokenize_batch(trained.tokenizer, [text], max_length=trained.max_length,
                                  buckets=trained.info.get("buckets") or buckets_up_to(trained.max_length))
        return serve(features["input_ids"], features["attention_mask"])[1].numpy()

    chosen = texts[:samples]
    for text in chosen[: min(5, len(chosen))]:  # trace every bucket shape these texts need before timing
        one(text)
    for text in chosen:
        one(text)
    times = []
    for text in chosen:
        start = time.perf_counter()
        one(text)
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "texts": len(times)}


def compare_runs(run_dirs: list, *, output: str | os.PathLike, data: str | None = None, text_column: str | None = None,
                 label_column: str | None = None, baseline: str | None = None, bootstrap: int = 1000, seed: int = 0,
                 limit: int | None = None, latency_samples: int = 50, examples: int = 5) -> dict:
    """Evaluate every run (and the baseline) on one test split and write the report into ``output``."""
    from tfxformers.models import artifacts
    from tfxformers.models.data.classification import load_classification

    if baseline not in (None, "tfidf"):
        raise UserError(f"unknown --baseline {baseline!r}; the one baseline is 'tfidf'")
    paths = [Path(p) for p in run_dirs]
    if not paths and baseline is None:
        raise UserError("nothing to compare: give at least one run directory (and/or --baseline tfidf)")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserError(f"--output {output} is a file, not a directory")
    infos = _check_runs(paths) if paths else []
    if not paths and data is None:
        raise UserError("--baseline alone needs --data (no run records a data set)")
    source, text_col, label_col = _data_source(paths, infos, data) if paths else (data, "text", "label")
    text_col, label_col = text_column or text_col, label_column or label_col
    dataset = load_classification(source, text_col, label_col)
    label_names = infos[0]["label_names"] if infos else dataset.label_names
    if dataset.label_names != label_names:
        unknown = sorted(set(dataset.label_names) - set(label_names))
        if unknown:
            raise UserError(f"{source} has labels the models do not know: {unknown}")
        index = {name: i for i, name in enumerate(label_names)}
        remap = np.array([index[n] for n in dataset.label_names])
        for part in (dataset.train, dataset.validation, dataset.test):
            part.labels = remap[part.labels]
    test = dataset.test.subset(limit)
    from tfxformers.models.tokenization import predict_logits

    predictions, details = {}, {}
    for name, path, info in zip(_unique_names(paths), paths, infos):
        trained = artifacts.load_trained(path)
        logits = predict_logits(trained.keras_model, trained.tokenizer, test.texts, max_length=trained.max_length,
                                buckets=info.get("buckets") or buckets_up_to(trained.max_length))
        predictions[name] = logits.argmax(axis=-1)
        metrics_file = path / "metrics.json"
        recorded = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        details[name] = {
            "kind": "transformer", "run": str(path), "mode": info.get("mode"),
            "trainable_layers": info.get("trainable_layers"), "encoder": info.get("encoder"),
            "parameters": int(trained.keras_model.count_params()),
            "trained_parameters": trained_parameters(trained.keras_model, info),
            # float32 weights; the checkpoint on disk also holds the optimizer's slots when the run trained
            # the saved model itself (finetune), hence the two figures.
            "size_bytes": 4 * int(trained.keras_model.count_params()),
            "checkpoint_bytes": _folder_bytes(path / "weights"), "train_seconds": recorded.get("train_seconds"),
            "latency": _latency_ms(trained, test.texts, latency_samples),
        }
        del trained
    if baseline == "tfidf":
        import pickle

        from tfxformers.models.classification.baseline import tfidf_baseline_for

        model = tfidf_baseline_for(dataset)
        predictions["tfidf"] = model.predict(test.texts)
        timings = []
        if latency_samples > 0:
            for text in test.texts[:latency_samples]:
                start = time.perf_counter()
                model.predict([text])
                timings.append((time.perf_counter() - start) * 1000)
        details["tfidf"] = {
            "kind": "baseline", "run": None, "mode": f"TF-IDF uni+bigrams + logistic regression (C={model.C})",
            "parameters": int(model.model.coef_.size + model.model.intercept_.size),
            "trained_parameters": int(model.model.coef_.size + model.model.intercept_.size),
            # The vectorizer's vocabulary is most of it.
            "size_bytes": len(pickle.dumps((model.vectorizer, model.model))),
            "checkpoint_bytes": len(pickle.dumps((model.vectorizer, model.model))),
            "train_seconds": round(model.seconds, 1),
            "latency": {"median_ms": float(np.median(timings)), "p90_ms": float(np.percentile(timings, 90)),
                        "texts": len(timings)} if timings else None,
        }
    report = compare_predictions(test.labels, predictions, label_names, test.texts, bootstrap=bootstrap, seed=seed,
                                 examples=examples)
    for name, extra in details.items():
        report["models"][name].update(extra)
    report.update(data=str(source), split="test", limit=limit)
    write_report(report, out)
    return report


# --- the report --------------------------------------------------------------------------------------

def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _count(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)


def _ci(model: dict, key: str) -> str:
    ci = model.get(f"{key}_ci")
    return f"{model[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{model[key]:.3f}"


def render_markdown(report: dict) -> str:
    models = report["models"]
    names = list(models)
    lines = [f"# Classifier comparison: {report['data']}, {report['split']} split ({report['examples']} texts)", "",
             "| model | what | accuracy [95% CI] | macro-F1 [95% CI] | parameters (trained) | size / on disk | "
             "training time | latency, batch 1 (median / p90) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        m = models[name]
        what = m.get("mode") or ""
        if m.get("trainable_layers"):
            what += f", top {m['trainable_layers']} layers"
        train = f"{m['train_seconds']:.0f} s" if m.get("train_seconds") is not None else "not recorded"
        lat = m.get("latency")
        latency = f"{lat['median_ms']:.1f} / {lat['p90_ms']:.1f} ms" if lat else "not measured"
        params = (f"{_count(m['parameters'])} ({_count(m['trained_parameters'])})"
                  if m.get("parameters") is not None else "")
        size = (f"{_size(m['size_bytes'])} / {_size(m['checkpoint_bytes'])}"
                if m.get("size_bytes") is not None else "")
        lines.append(f"| {name} | {what} | {_ci(m, 'accuracy')} | {_ci(m, 'macro_f1')} | {params} | {size} | "
                     f"{train} | {latency} |")
    boot = report["bootstrap"]
    lines += ["", f"Intervals: {boot['samples']} bootstrap resamples of the test texts (percentile, seed "
              f"{boot['seed']}), the same resamples for every model. Parameters: all, and (in brackets) those "
              "the training changed. Size: float32 weights (TF-IDF: the pickled vectorizer and model) / the "
              "checkpoint on disk, which also holds optimizer slots when the run trained the saved model itself. "
              "Training time is what each run recorded "
              "(`metrics.json`: training only, feature caching included for frozen / partial); latency is one "
              "text through tokenization and the serving computation, in-process, after warm-up.", "",
              "![scores](scores.png)", "", "## Per-class precision and recall (classification report)", ""]
    labels = report["label_names"]
    lines.append("| model | " + " | ".join(f"{l} P / R / F1 (n)" for l in labels) + " |")
    lines.append("| --- |" + " --- |" * len(labels))
    for name in names:
        cells = []
        for label in labels:
            c = models[name]["per_class"][label]
            cells.append(f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f} ({c['support']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Confusion matrices", "", "![confusion matrices](confusion_matrices.png)", ""]
    if report["pairs"]:
        lines += ["## McNemar tests (each pair, on the texts exactly one of the two gets right)", "",
                  "| A | B | only A right | only B right | texts they disagree on | test | statistic | p |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for p in report["pairs"]:
            lines.append(f"| {p['a']} | {p['b']} | {p['only_a_right']} | {p['only_b_right']} | {p['disagree']} | "
                         f"{p['method']} | {p['statistic']:.2f} | {p['p_value']:.3g} |")
        lines += ["", f"Exact binomial below {EXACT_BELOW} discordant texts, chi-square (1 df, continuity-corrected) "
                  "otherwise. No correction for multiple comparisons.", ""]
    dis = report["disagreements"]
    lines += ["## Where they disagree", "",
              f"The models do not all give the same label on {dis['count']} of {report['examples']} test texts. Some:", ""]
    if dis["examples"]:
        lines.append("| text | true | " + " | ".join(names) + " |")
        lines.append("| --- | --- |" + " --- |" * len(names))
        for e in dis["examples"]:
            text = (e["text"] or "").replace("|", "\\|").replace("\n", " ")
            text = text if len(text) <= 160 else text[:157] + "..."
            lines.append(f"| {text} | {e['true']} | " + " | ".join(e["predicted"][n] for n in names) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, output: str | os.PathLike) -> dict:
    from tfxformers.models.classification import plots

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    names = list(report["models"])
    models = report["models"]
    paths = {
        "confusion": plots.confusion_matrices(names, [models[n]["confusion_matrix"] for n in names],
                                              report["label_names"], out / "confusion_matrices.png"),
        "scores": plots.scores(names,
                               [(models[n]["accuracy"], *models[n].get("accuracy_ci", [models[n]["accuracy"]] * 2))
                                for n in names],
                               [(models[n]["macro_f1"], *models[n].get("macro_f1_ci", [models[n]["macro_f1"]] * 2))
                                for n in names],
                               out / "scores.png"),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(render_markdown(report))
    paths.update(json=out / "report.json", markdown=out / "report.md")
    return paths
