"""EleutherAI's lm-eval evaluating a model through thrifty's endpoint (interop check).

    pip install torch==2.13.0 'lm-eval[api]'    # into any Python; about 1.6 GB with CPU torch
    python benchmarks/lm_eval_interop.py [--lm-eval PATH] [--model local]

Starts `thrifty serve` on a free port, writes a tiny generate-until task (five capital-city
questions, a local JSON file: nothing comes from a hub), runs `lm_eval --model
local-chat-completions` against thrifty's /v1/chat/completions, prints lm-eval's table, and
checks thrifty's request log saw every request (route and cost metered as for any client).
Measured here: 5 of 5 requests answered and logged; the bundled 135M model's exact-match score
is 0 (it answers in sentences, "The capital of France is Paris.").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import thrifty_serve

QUESTIONS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Germany": "Berlin",
             "Spain": "Madrid"}  # fmt: skip
TASK = """\
task: thrifty_capitals
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 24
  temperature: 0
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: true
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm-eval", default=shutil.which("lm_eval"), help="the lm_eval command")
    parser.add_argument("--model", default="local", help="model name thrifty serves")
    args = parser.parse_args()
    if not args.lm_eval:
        sys.exit("lm_eval not found: pip install torch==2.13.0 'lm-eval[api]' (or --lm-eval PATH)")
    work = Path(tempfile.mkdtemp(prefix="lm-eval-"))
    data = work / "capitals.jsonl"
    data.write_text("".join(
        json.dumps({"question": f"What is the capital of {c}? Answer with one word.", "answer": a})
        + "\n" for c, a in QUESTIONS.items()
    ))  # fmt: skip
    (work / "thrifty_capitals.yaml").write_text(TASK.format(data=data))
    with thrifty_serve(work / "home") as thrifty:
        started = time.time()
        command = [
            args.lm_eval, "--model", "local-chat-completions",
            "--model_args", f"model={args.model},base_url={thrifty.base_url}/chat/completions,"
            "num_concurrent=1,max_retries=1,tokenized_requests=False",
            "--tasks", "thrifty_capitals", "--include_path", str(work), "--apply_chat_template",
        ]  # fmt: skip
        env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
               "OPENAI_API_KEY": "unused"}  # fmt: skip
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        print("\n".join(line for line in result.stdout.splitlines() if line.startswith("|")))
        if result.returncode != 0:
            sys.exit(f"lm_eval failed:\n{result.stderr[-2000:]}")
        time.sleep(1.0)  # the request log is written in batches
        db = sqlite3.connect(work / "home" / "thrifty.db")
        rows = db.execute(
            "SELECT route, status, cost_nanos FROM requests WHERE ts >= ?", (started,)
        ).fetchall()
        ok = sum(1 for _, status, _ in rows if status == 200)
        print(f"thrifty's request log: {len(rows)} requests from lm-eval, {ok} answered, "
              f"routes {sorted({r[0] for r in rows})}")  # fmt: skip
        if ok < len(QUESTIONS):
            sys.exit("not every lm-eval request was answered through thrifty")


if __name__ == "__main__":
    main()
