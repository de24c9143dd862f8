"""The bag-of-words baseline every transformer here must beat: TF-IDF word uni+bigrams + logistic regression.

``fit_tfidf_baseline(train_texts, train_labels, val_texts, val_labels)`` fits it in a few seconds (scikit-learn,
no TensorFlow) and picks the regularisation strength on the validation split, never on test; ``.accuracy(texts,
labels)`` scores any split. The classification benchmark, ``tfxformers demo`` and the pipeline's Evaluator
threshold (``pipeline run --task sentiment``) all use this one function, so they quote the same baseline.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

C_GRID = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class TfidfBaseline:
    vectorizer: object
    model: object
    C: float
    validation_accuracy: float
    seconds: float

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.predict(self.vectorizer.transform(list(texts)))

    def accuracy(self, texts: Sequence[str], labels) -> float:
        return float((self.predict(texts) == np.asarray(labels)).mean())


def fit_tfidf_baseline(train_texts: Sequence[str], train_labels, val_texts: Sequence[str], val_labels,
                       c_grid: Sequence[float] = C_GRID) -> TfidfBaseline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform(list(train_texts))
    x_val = vectorizer.transform(list(val_texts))
    best = None
    for c in c_grid:
        with warnings.catch_warnings():
            # scikit-learn 1.5 passes L-BFGS-B an `iprint` option that SciPy >= 1.15 ignores with an
            # OptimizeWarning on every fit (the current stack's SciPy); the fit is the same either way.
            warnings.filterwarnings("ignore", message="Unknown solver options: iprint")
            model = LogisticRegression(C=c, max_iter=2000).fit(x_train, np.asarray(train_labels))
        val = float((model.predict(x_val) == np.asarray(val_labels)).mean())
        if best is None or val > best[0]:
            best = (val, c, model)
    return TfidfBaseline(vectorizer, best[2], best[1], best[0], time.perf_counter() - start)


def tfidf_baseline_for(data) -> TfidfBaseline:
    """The baseline fitted on a ``ClassificationData``'s train split (C chosen on its validation split)."""
    return fit_tfidf_baseline(data.train.texts, data.train.labels, data.validation.texts, data.validation.labels)
