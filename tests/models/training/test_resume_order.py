"""A run resumed by Keras' BackupAndRestore mid-epoch must train on the batches the uninterrupted run did.

Each training step records the example indices of its batch (the labels are the indices); a run killed
in the middle of its second epoch and resumed from the backup must, together, have seen exactly the
uninterrupted run's batches, in its order.
"""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tfxformers.models.lm.gpt2 import lm_dataset  # noqa: E402
from tfxformers.models.multiworker import resume_start  # noqa: E402
from tfxformers.models.tokenization import Encoded, make_dataset, plan_batches  # noqa: E402

EXAMPLES, BATCH, EPOCHS = 40, 4, 3
STOP_EPOCH, STOP_STEP = 1, 4  # the second epoch, after its fifth step


class Interrupted(Exception):
    pass


def _encoded() -> Encoded:
    rng = np.random.default_rng(7)
    ids = [[1] + list(rng.integers(3, 50, size=int(n))) + [2] for n in rng.integers(1, 20, size=EXAMPLES)]
    return Encoded(ids, truncated=0, max_length=32, pad_id=0)


def _lm_blocks() -> np.ndarray:
    """GPT-2 blocks whose first target token is the block's index."""
    blocks = np.random.default_rng(7).integers(3, 50, size=(EXAMPLES, 9)).astype(np.int32)
    blocks[:, 1] = np.arange(EXAMPLES)
    return blocks


def _datasets(kind: str, start):
    """(the dataset, steps per epoch) of the real classifier (make_dataset) or GPT-2 (lm_dataset) input."""
    if kind == "classifier":
        encoded = _encoded()
        steps = len(plan_batches(encoded.lengths, BATCH, False, None))
        return make_dataset(encoded, np.arange(EXAMPLES), batch_size=BATCH, shuffle=True, seed=3, start=start), steps
    return lm_dataset(_lm_blocks(), BATCH, shuffle=True, seed=3, start=start), -(-EXAMPLES // BATCH)


def _model(seen: list, kind: str):
    class Recorder(tf.keras.Model):
        def train_step(self, data):
            x, y = data
            y = y[:, 0] if kind == "lm" else y  # the example index
            seen.append(tuple(int(i) for i in y.numpy()))
            return super().train_step((x, y))

    ids = tf.keras.Input((None,), dtype=tf.int32, name="input_ids")
    inputs = {"input_ids": ids}
    if kind == "classifier":
        inputs["attention_mask"] = tf.keras.Input((None,), dtype=tf.int32, name="attention_mask")
    x = tf.keras.layers.GlobalAveragePooling1D()(tf.keras.layers.Embedding(64, 4)(ids))
    model = Recorder(inputs, tf.keras.layers.Dense(EXAMPLES)(x))
    model.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    return model


def _fit(kind, seen, backup=None, stop=None, save_freq=1):
    callbacks = []
    start = (0, 0)
    if backup is not None:
        callbacks.append(tf.keras.callbacks.BackupAndRestore(str(backup), save_freq=save_freq))
        start = resume_start(backup, _datasets(kind, (0, 0))[1])
    if stop is not None:
        class Stop(tf.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if (self.epoch, batch) == stop:
                    raise Interrupted

        callbacks.append(Stop())
    tf.keras.utils.set_random_seed(0)
    _model(seen, kind).fit(_datasets(kind, start)[0], epochs=EPOCHS, verbose=0, callbacks=callbacks)


@pytest.mark.parametrize("kind", ["classifier", "lm"])
def test_a_fit_resumed_mid_epoch_sees_the_batches_of_the_uninterrupted_fit(kind, tmp_path):
    uninterrupted: list = []
    _fit(kind, uninterrupted)
    steps = _datasets(kind, (0, 0))[1]
    assert len(uninterrupted) == steps * EPOCHS
    # The epochs really are shuffled differently (else the test could not tell them apart).
    assert uninterrupted[:steps] != uninterrupted[steps : 2 * steps]

    resumed: list = []
    with pytest.raises(Interrupted):
        _fit(kind, resumed, backup=tmp_path / "backup", stop=(STOP_EPOCH, STOP_STEP))
    assert len(resumed) == STOP_EPOCH * steps + STOP_STEP + 1
    assert resume_start(tmp_path / "backup", steps) == (STOP_EPOCH, STOP_STEP + 1)
    _fit(kind, resumed, backup=tmp_path / "backup")
    assert resumed == uninterrupted


def test_a_fit_resumed_at_an_epoch_end_starts_the_next_epoch(tmp_path):
    """GPT-2 backs up once an epoch: the resumed run must go on with the next epoch's order, not epoch 0's."""
    uninterrupted: list = []
    _fit("lm", uninterrupted)
    steps = -(-EXAMPLES // BATCH)
    resumed: list = []
    with pytest.raises(Interrupted):
        _fit("lm", resumed, backup=tmp_path / "backup", stop=(STOP_EPOCH, 0), save_freq="epoch")
    assert resume_start(tmp_path / "backup", steps) == (STOP_EPOCH, 0)
    _fit("lm", resumed, backup=tmp_path / "backup", save_freq="epoch")
    assert resumed[steps + 1 :] == uninterrupted[steps:]


def test_resume_start_without_a_backup(tmp_path):
    assert resume_start(tmp_path / "missing", 10) == (0, 0)
