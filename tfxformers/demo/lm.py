"""``tfxformers demo --task lm``: GPT-2 pretrained on Emma through the language-model pipeline, served,
generating through the proxy's ``:generate``."""
from __future__ import annotations

import argparse
import time

from tfxformers.demo.common import banner, pushed_versions, served, tfxformers_here

LM_MODEL_NAME = "emma"
LM_PRESET = "mini"
LM_EPOCHS = 6
LM_PROMPTS = ("Emma Woodhouse, handsome, clever, and rich,", "Mr. Knightley", "It was a beautiful morning, and")
LM_NEW_TOKENS = 24


def run_lm_demo(args: argparse.Namespace) -> int:
    """Emma -> the LM pipeline -> serve -> proxy :generate (see the module docstring)."""
    import httpx

    from tfxformers.pipeline.lm.runner import LmRunOptions, report_lm, run_lm_local

    started = time.perf_counter()
    root = args.pipeline_root or f"pipelines/{LM_MODEL_NAME}"
    banner(f"TFX pipeline: Emma's chapters -> BPE on the train chapters -> GPT-2 {LM_PRESET} ({LM_EPOCHS} epochs, "
            f"train gpt2's recipe) -> perplexity vs unigram / bigram baselines -> Pusher (LocalDagRunner, {root})")
    # Beam in-process: one novel is a few hundred examples, less than the start-up of Beam worker processes.
    summary = run_lm_local(LmRunOptions(corpus="emma", name=LM_MODEL_NAME, model_base=args.model_base,
                                        pipeline_root=root, preset=LM_PRESET, epochs=LM_EPOCHS,
                                        beam_args=["--direct_running_mode=in_memory"]))
    code = report_lm(summary)
    pipeline_seconds = time.perf_counter() - started
    if code != 0:
        return code
    pushed_versions(args.model_base, LM_MODEL_NAME, pipeline_seconds)
    e = summary.evaluation
    print(f"held-out chapters: GPT-2 perplexity {e['eval_perplexity']:.1f}, unigram {e['unigram_perplexity']:.1f}, "
          f"bigram {e['bigram_perplexity']:.1f} ({e['eval_tokens']:,} tokens)")

    with served(args.model_base, LM_MODEL_NAME) as ports:
        url = f"{ports.proxy_url}/v1/models/{LM_MODEL_NAME}:generate"
        banner(f"POST {url}: {len(LM_PROMPTS)} prompts, greedy and sampled (seeded)")
        for prompt in LM_PROMPTS:
            for settings in ({"strategy": "greedy"}, {"strategy": "sample", "temperature": 0.8, "top_k": 40, "seed": 7}):
                answer = httpx.post(url, json={"prompt": prompt, "max_new_tokens": LM_NEW_TOKENS, **settings}, timeout=60)
                answer.raise_for_status()
                body = answer.json()
                print(f"[{settings['strategy']:>6}] {prompt}|{body['text']}".replace("\n", " "))
        print(f"answered by {body['model']} version {body['version']}")

    banner(f"done in {time.perf_counter() - started:.0f} s; server and proxy stopped. Run the pieces by hand:")
    base, tfx = args.model_base, tfxformers_here()
    print(f"""  {tfx} pipeline run --task lm --corpus emma --preset {LM_PRESET} --epochs {LM_EPOCHS} \\
      --name {LM_MODEL_NAME} --model-base {base} --pipeline-root {root}     # again: served from the cache
  {tfx} serve --model-base {base} --grpc-port 8500 --rest-port 8501 &
  {tfx} proxy --backend grpc://127.0.0.1:8500 --port 8000 &
  curl -s -X POST localhost:8000/v1/models/{LM_MODEL_NAME}:generate \\
      -H 'content-type: application/json' -d '{{"prompt": "Emma", "max_new_tokens": 20}}'""")
    return 0
