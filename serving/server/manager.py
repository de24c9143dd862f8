"""The model manager of the embedded TF-Serving-compatible server: versions, policies, loading, status.

``ModelManager`` watches model base directories laid out as TensorFlow Serving expects them
(``BASE/<integer version>/`` SavedModels, ``serving.layout``), decides which versions to serve from each
model's version policy (latest N, specific versions, all), loads them as ``Servable`` objects, replays
their warm-up records, and answers lookups by name + version or label. The gRPC and REST front ends ask
it; it knows neither of them.

Behaviour copied from TF Serving (read in tensorflow/serving: server_core.cc, basic_manager.cc,
get_model_status_impl.cc, predict_util.cc, saved_model_warmup_util.cc):

* a request names a model and optionally a version or a label; an unknown model or a version that is
  not loaded is ``NOT_FOUND`` ("Servable not found for request: Latest(NAME)" / "Specific(NAME, V)"),
  an unknown label ``INVALID_ARGUMENT`` ("Unrecognized servable version label: L");
* the start-up load is synchronous (TF Serving waits for the initial versions before it listens);
  afterwards the file system is polled every ``poll_wait_seconds``;
* a new version is loaded (and warmed up) before the version it replaces is unloaded, so there is never
  a moment without a servable version;
* every version the manager ever tried stays in the status answer: unloaded ones as ``END`` with an OK
  status, versions that failed to load as ``END`` with the error.

Two deliberate differences:

* TF Serving's availability-preserving policy can unload the old version after a new one failed; here a
  version that failed to load is left out of the policy until its files change, so the previous version
  keeps serving (what users of a canary deployment want);
* a version directory is loaded only once its files have settled: nothing under it (at any depth) was
  created or written for ``SETTLE_SECONDS`` (by inode change time, which a copy that keeps modification
  times still sets), or its files looked the same that long apart (a clock that disagrees with the file
  system's). Pushers rename a finished version into place, but a copy made file by file (``cp -r``,
  ``gsutil cp``, ``kubectl cp``) shows the directory before its files: TF Serving would load what is
  there, e.g. a SavedModel without its ``assets.extra`` (no warm-up, no limits, no tokenizer), and never
  reload it. A poll that meets a version about to settle waits for it (at most ``SETTLE_SECONDS``), so a
  pushed version costs that much more before it loads, and a start-up over older files nothing.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.serving import layout
from tfxformers.serving.server.batching import attach_batchers
from tfxformers.serving.server.config import ModelConfig, configs_from_config_file
from tfxformers.serving.server.errors import ServingError
from tfxformers.serving.server.servable import Servable
from tfxformers.serving.server.tensors import proto_to_ndarray

log = logging.getLogger("tfxformers.serve")

MAX_WARMUP_RECORDS = 1000  # TF Serving's limit; more records fail the load
SETTLE_SECONDS = 0.5  # how long a version's files must stay untouched before it is loaded


# --------------------------------------------------------------------------------------------------

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class VersionState:
    state: str
    error_code: str = "OK"
    error_message: str = ""
    servable: Servable | None = None
    dir_stamp: int = 0  # the fingerprint of its files (``_look``) when it was loaded or failed
    warmup_records: int = 0


def _look(path: Path) -> tuple[int, float]:
    """(fingerprint, newest inode change time) of everything under a version directory. The fingerprint
    (relative names, sizes, modification and change times) changes when any file is added, grows or is
    rewritten at any depth, which the directory's own mtime does not see. (-1, 0) when it cannot be read."""
    entries = []
    try:
        top = os.stat(path)
        newest = top.st_ctime
        for root, dirs, files in os.walk(path, onerror=_raise):
            dirs.sort()
            for name in sorted(files) + dirs:
                info = os.stat(os.path.join(root, name))
                newest = max(newest, info.st_ctime)
                entries.append((os.path.relpath(os.path.join(root, name), path), info.st_size, info.st_mtime_ns,
                                info.st_ctime_ns))
    except OSError:
        return -1, 0.0
    return hash((top.st_mtime_ns, tuple(entries))), newest


def _raise(error: OSError):
    raise error


class ModelManager:
    """Decides, loads and unloads versions; answers lookups and status. Thread-safe."""

    def __init__(self, configs: list[ModelConfig], poll_wait_seconds: float = 1.0, batching=None,
                 metrics=None):
        self.configs = {c.name: c for c in configs}
        self.poll_wait_seconds = poll_wait_seconds
        self.batching = batching  # batching.BatchingChoice, or None when batching is off
        self.metrics = metrics
        self.states: dict[str, dict[int, VersionState]] = {c.name: {} for c in configs}
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = self._config_thread = None
        self._warned: set[str] = set()
        # Each model's versions: (fingerprint, when it was first seen) at the last poll.
        self._seen: dict[str, dict[int, tuple[int, float]]] = {}

    # ---- lifecycle
    def start(self) -> None:
        self.poll_once()
        if self.poll_wait_seconds and self.poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="tfxformers-serve-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._config_thread):
            if thread is not None:
                thread.join(timeout=30)
        with self._lock:
            for versions in self.states.values():
                for state in versions.values():
                    if state.servable is not None:
                        state.servable.close()
                        state.servable = None

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # a poll must never kill the server
                log.exception("file system poll failed")

    def watch_config_file(self, path, poll_wait_seconds: float) -> None:
        """Re-read a ModelServerConfig file every ``poll_wait_seconds`` (``--model-config-file-poll-wait-seconds``)."""
        def loop():
            last = None
            while not self._stop.wait(poll_wait_seconds):
                try:
                    text = Path(path).read_text()
                    if text == last:
                        continue
                    last = text
                    self.reload(configs_from_config_file(path))
                except (UserError, ServingError, OSError) as exc:
                    log.error("model config %s not applied: %s", path, exc)
                except Exception:
                    log.exception("model config poll failed")

        self._config_thread = threading.Thread(target=loop, name="tfxformers-serve-config", daemon=True)
        self._config_thread.start()

    def check_labels(self, configs: dict[str, ModelConfig] | None = None) -> None:
        """A label may only name an AVAILABLE version (TF Serving's rule at start-up and on reload)."""
        with self._lock:
            for name, config in (configs or self.configs).items():
                for label, version in sorted(config.labels.items()):
                    state = self.states.get(name, {}).get(version)
                    if state is None or state.state != AVAILABLE:
                        raise ServingError("FAILED_PRECONDITION", (
                            f"Request to assign label to version {version} of model {name}, which is not currently "
                            "available for inference"))

    def reload(self, configs: list[ModelConfig]) -> None:
        """Apply a new model list (ModelService.HandleReloadConfigRequest, config file polling).

        As in TF Serving, removed models are unloaded, new ones loaded, and new labels are assigned only
        after loading, to versions that are AVAILABLE; otherwise FAILED_PRECONDITION and the old labels stay."""
        new = {c.name: c for c in configs}
        with self._poll_lock:
            for name in set(self.configs) - set(new):
                for version, state in list(self.states[name].items()):
                    if state.state == AVAILABLE:
                        self._unload(self.configs[name], version)
            with self._lock:
                old_labels = {n: c.labels for n, c in self.configs.items()}
                for name, config in new.items():
                    self.states.setdefault(name, {})
                self.configs = {n: ModelConfig(c.name, c.base_path, c.policy, old_labels.get(n, {}))
                                for n, c in new.items()}
        self.poll_once()
        with self._lock:
            self.check_labels(new)
            for name, config in new.items():
                self.configs[name].labels = dict(config.labels)
        log.info("model config applied: %s", ", ".join(sorted(new)) or "no models")

    # ---- policy
    def _aspired(self, config: ModelConfig, on_disk: dict[int, Path], states: dict[int, VersionState],
                 stamps: dict[int, int]) -> set[int]:
        def failed(v):
            s = states.get(v)
            return s is not None and s.state == END and s.error_code != "OK" and s.dir_stamp == stamps[v]

        kind, arg = config.policy
        if kind == "specific":
            return {v for v in on_disk if v in arg and not failed(v)}
        if kind == "all":
            return {v for v in on_disk if not failed(v)}
        return set(sorted((v for v in on_disk if not failed(v)), reverse=True)[:arg])

    def _look_all(self) -> tuple[dict[str, dict[int, Path]], dict[str, dict[int, int]], dict[str, set[int]]]:
        """(versions on disk, their fingerprints, the settled ones) of every model. When some version is
        about to settle, waits for it first (once for all models, at most SETTLE_SECONDS)."""
        disks = {name: layout.version_numbers(config.base_path) for name, config in self.configs.items()}
        for attempt in range(2):
            now, wait = time.time(), 0.0
            stamps, settled = {}, {}
            for name, on_disk in disks.items():
                seen = self._seen.setdefault(name, {})
                stamps[name], settled[name] = {}, set()
                for version, path in on_disk.items():
                    fingerprint, newest = _look(path)
                    stamps[name][version] = fingerprint
                    if fingerprint == -1:
                        continue
                    if seen.get(version, (None,))[0] != fingerprint:
                        seen[version] = (fingerprint, now)
                    # Untouched long enough by the file system's clock, or unchanged that long by ours.
                    left = min(SETTLE_SECONDS - (now - newest), SETTLE_SECONDS - (now - seen[version][1]))
                    if left <= 0:
                        settled[name].add(version)
                    else:
                        wait = max(wait, left)
                for version in set(seen) - set(on_disk):
                    del seen[version]
            if not wait or attempt:
                return disks, stamps, settled
            time.sleep(min(wait, SETTLE_SECONDS))
        return disks, stamps, settled

    def poll_once(self) -> None:
        """One pass over every model: load aspired versions whose files have settled, then unload the ones
        no longer aspired (only once a newer one is AVAILABLE, under the latest-N policy)."""
        with self._poll_lock:
            disks, all_stamps, all_settled = self._look_all()
            for config in self.configs.values():
                on_disk = disks[config.name]
                states = self.states[config.name]
                stamps, settled = all_stamps[config.name], all_settled[config.name]
                for _ in range(2):  # a failed load drops out of the policy, which may make an older version aspired
                    for version in sorted(self._aspired(config, on_disk, states, stamps), reverse=True):
                        state = states.get(version)
                        if (state is None or state.state == END) and version in settled:
                            self._load(config, version, on_disk[version], stamps[version])
                aspired = {v for v in self._aspired(config, on_disk, states, stamps)
                           if states.get(v) is not None and states[v].state == AVAILABLE}
                serving = [v for v, s in states.items() if s.state == AVAILABLE]
                for version in serving:
                    gone = version not in on_disk
                    if gone or (version not in aspired and (aspired or config.policy[0] != "latest")):
                        self._unload(config, version)
                if not on_disk and config.name not in self._warned:
                    self._warned.add(config.name)  # once, not at every poll
                    log.warning("no versions of model %s found under %s", config.name, config.base_path)
                elif on_disk:
                    self._warned.discard(config.name)

    def _load(self, config: ModelConfig, version: int, path: Path, stamp: int) -> None:
        states = self.states[config.name]
        with self._lock:
            states[version] = VersionState(LOADING, dir_stamp=stamp)
        self._set_state_metric(config.name, version, LOADING)
        log.info("loading servable version {name: %s version: %d} from %s", config.name, version, path)
        started = time.perf_counter()
        try:
            servable = Servable(config.name, version, path)
            servable.metrics = self.metrics
            if self.batching is not None:
                params, source = self.batching.for_version(path)
                log.info("model %s version %d batches with the parameters of %s", config.name, version, source)
                attach_batchers(servable, params, self.metrics)
            records = self._warm_up(servable)
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, ServingError):
                message = exc.message
            with self._lock:
                states[version] = VersionState(END, "UNKNOWN" if not isinstance(exc, ServingError) else exc.code,
                                               f"Failed to load servable version {version} of {config.name}: "
                                               f"{message}", dir_stamp=stamp)
            log.error("model %s version %d failed to load: %s", config.name, version, message)
            if self.metrics is not None:
                self.metrics.load_attempt(str(path), "fail")
            self._set_state_metric(config.name, version, END)
            return
        with self._lock:
            states[version] = VersionState(AVAILABLE, servable=servable, dir_stamp=stamp, warmup_records=records)
        if self.metrics is not None:
            self.metrics.load_attempt(str(path), "success")
        self._set_state_metric(config.name, version, AVAILABLE)
        log.info("model %s version %d AVAILABLE (%.1f s, %d warm-up records replayed)", config.name, version,
                 time.perf_counter() - started, records)

    def _unload(self, config: ModelConfig, version: int) -> None:
        with self._lock:
            state = self.states[config.name][version]
            servable, state.state = state.servable, UNLOADING
        self._set_state_metric(config.name, version, UNLOADING)
        with self._lock:
            self.states[config.name][version] = VersionState(END, dir_stamp=state.dir_stamp,
                                                             warmup_records=state.warmup_records)
        if servable is not None:
            servable.close()
        self._set_state_metric(config.name, version, END)
        log.info("model %s version %d unloaded", config.name, version)

    def _set_state_metric(self, name: str, version: int, state: str) -> None:
        if self.metrics is not None:
            self.metrics.version_state(name, version, state)

    def _warm_up(self, servable: Servable) -> int:
        """Replay ``assets.extra/tf_serving_warmup_requests`` (PredictionLog TFRecords) before AVAILABLE."""
        path = servable.path / layout.ASSETS_EXTRA / layout.WARMUP_FILE
        if not path.is_file():
            return 0
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        started = time.perf_counter()
        count = 0
        status = "OK"
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                count += 1
                if count > MAX_WARMUP_RECORDS:
                    raise ServingError("INVALID_ARGUMENT", f"Number of warmup records exceeds the maximum "
                                                           f"({MAX_WARMUP_RECORDS}) at {path}")
                log_entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
                if log_entry.WhichOneof("log_type") != "predict_log":
                    raise ServingError("UNIMPLEMENTED", "only predict_log warm-up records are supported")
                request = log_entry.predict_log.request
                inputs = {k: proto_to_ndarray(v) for k, v in request.inputs.items()}
                servable.predict(request.model_spec.signature_name, inputs, tuple(request.output_filter))
        except Exception:
            status = "FAILED"
            raise
        finally:
            if self.metrics is not None:
                self.metrics.warmup(str(servable.path), status, min(count, MAX_WARMUP_RECORDS),
                                    time.perf_counter() - started)
        return count

    # ---- lookups
    def config(self, name: str) -> ModelConfig | None:
        return self.configs.get(name)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for a request's model spec, or the ServingError TF Serving would give."""
        if not name:
            raise ServingError("INVALID_ARGUMENT", "ModelSpec has no name specified.")
        if version is not None and label:
            raise ServingError("INVALID_ARGUMENT", f"Both model version ({version}) and model version label "
                                                   f"({label}) cannot be supplied.")
        if label:
            config = self.configs.get(name)
            if config is None or label not in config.labels:
                raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
            version = config.labels[label]
        with self._lock:
            versions = self.states.get(name, {})
            if version is None:
                available = [v for v, s in versions.items() if s.state == AVAILABLE]
                if not available:
                    raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
                return versions[max(available)].servable
            state = versions.get(version)
            if state is None or state.state != AVAILABLE:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
            return state.servable

    def status(self, name: str, version: int | None = None) -> list[tuple[int, VersionState]]:
        """Version states for GetModelStatus (get_model_status_impl.cc semantics)."""
        if not name:
            raise ServingError("INVALID_ARGUMENT", "Missing model name in request.")
        with self._lock:
            versions = dict(self.states.get(name, {}))
        if version is not None:
            if version not in versions:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
            return [(version, versions[version])]
        if not versions:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        return sorted(versions.items())

    def available_count(self) -> int:
        with self._lock:
            return sum(1 for versions in self.states.values() for s in versions.values() if s.state == AVAILABLE)
