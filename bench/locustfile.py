"""Locust load for the classification endpoint: one review per request, as in the textbook's comparison.

    locust -f bench/locustfile.py --headless -u 10 -r 10 -t 60s --host http://127.0.0.1:8000 \
        --csv bench/results/load_proxy

Environment: ``LOAD_TEXTS`` a JSON list of texts to draw from (``load_bench.py`` writes held-out Rotten
Tomatoes snippets; without it a few built-in reviews are used), ``LOAD_MODEL`` the model name
(default ``sentiment``), ``LOAD_RATE`` requests per second per user (default 0: as fast as answers come,
i.e. a closed loop that measures throughput; > 0 paces users for a soak at a fixed rate).
"""
from __future__ import annotations

import json
import os
import random

from locust import HttpUser, constant, constant_throughput, task

FALLBACK_TEXTS = [
    "a charming, funny and moving film",
    "the plot is a tedious mess and the acting is flat",
    "an ambitious story about family and loss that never quite comes together",
    "one of the best films of the year",
]
TEXTS = json.loads(open(os.environ["LOAD_TEXTS"]).read()) if os.environ.get("LOAD_TEXTS") else FALLBACK_TEXTS
MODEL = os.environ.get("LOAD_MODEL", "sentiment")
RATE = float(os.environ.get("LOAD_RATE", "0"))


class Reviewer(HttpUser):
    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)

    @task
    def classify(self):
        with self.client.post(f"/v1/models/{MODEL}:classify", json={"texts": [random.choice(TEXTS)]},
                              name="classify", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            elif "results" not in response.json():
                response.failure("no results in the answer")
