"""``tfxformers demo --task lm``: GPT-2 pretrained on Emma through the language-model pipeline, served,
generating through the proxy's ``:generate``."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from tfxformers.demo.common import banner, tfxformers_here

LM_MODEL_NAME = "emma"
LM_PRESET = "mini"
LM_EPOCHS = 6
LM_PROMPTS = ("Emma Woodhouse, handsome, clever, and rich,", "Mr. Knightley", "It was a beautiful morning, and")
LM_NEW_TOKENS = 24


def run_lm_demo(args: argparse.Namespace) -> int:
    """Emma -> the LM pipeline -> serve -> proxy :generate (see the module docstring)."""
    import httpx

    from tfxformers.errors import UserError
    from tfxformers.pipeline.lm.runner import LmRunOptions, report_lm, run_lm_local
    from tfxformers.serving.layout import version_dirs
    from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

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
    versions = version_dirs(Path(args.model_base) / LM_MODEL_NAME)
    if not versions:
        raise UserError(f"the pipeline pushed no version to {args.model_base}/{LM_MODEL_NAME}")
    banner(f"pipeline done in {pipeline_seconds:.0f} s; {args.model_base}/{LM_MODEL_NAME} holds versions {versions}")
    e = summary.evaluation
    print(f"held-out chapters: GPT-2 perplexity {e['eval_perplexity']:.1f}, unigram {e['unigram_perplexity']:.1f}, "
          f"bigram {e['bigram_perplexity']:.1f} ({e['eval_tokens']:,} tokens)")

    banner(f"starting tfxformers serve on {args.model_base}")
    server, grpc_port, rest_port = start_model_server(args.model_base, wait_for=LM_MODEL_NAME)
    proxy = None
    try:
        print(f"gRPC 127.0.0.1:{grpc_port}, REST 127.0.0.1:{rest_port}")
        proxy, proxy_url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", models=LM_MODEL_NAME)
        url = f"{proxy_url}/v1/models/{LM_MODEL_NAME}:generate"
        banner(f"POST {url}: {len(LM_PROMPTS)} prompts, greedy and sampled (seeded)")
        for prompt in LM_PROMPTS:
            for settings in ({"strategy": "greedy"}, {"strategy": "sample", "temperature": 0.8, "top_k": 40, "seed": 7}):
                answer = httpx.post(url, json={"prompt": prompt, "max_new_tokens": LM_NEW_TOKENS, **settings}, timeout=60)
                answer.raise_for_status()
                body = answer.json()
                print(f"[{settings['strategy']:>6}] {prompt}|{body['text']}".replace("\n", " "))
        print(f"answered by {body['model']} version {body['version']}")
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_model_server(server)

    banner(f"done in {time.perf_counter() - started:.0f} s; server and proxy stopped. Run the pieces by hand:")
    base, tfx = args.model_base, tfxformers_here()
    print(f"""  {tfx} pipeline run --task lm --corpus emma --preset {LM_PRESET} --epochs {LM_EPOCHS} \\
      --name {LM_MODEL_NAME} --model-base {base} --pipeline-root {root}     # again: served from the cache
  {tfx} serve --model-base {base} --grpc-port 8500 --rest-port 8501 &
  {tfx} proxy --backend grpc://127.0.0.1:8500 --port 8000 &
  curl -s -X POST localhost:8000/v1/models/{LM_MODEL_NAME}:generate \\
      -H 'content-type: application/json' -d '{{"prompt": "Emma", "max_new_tokens": 20}}'""")
    return 0
