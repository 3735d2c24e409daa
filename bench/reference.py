"""The reference: LoRA fine-tuning as a naive user writes it with the HF Trainer + PEFT.

Default TrainingArguments (fp32), the whole chat tokenised with the chat template, loss over all tokens
(labels = input_ids), padding to the longest in the batch, random batches. The adapter is the recipe's own
(rank, alpha, dropout, target modules and adapted layers, passed as LoraConfig arguments in JSON), so that both
trainers train the same parameters.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)


def main(model_dir: str, train_file: str, out_dir: str, steps: int, batch_size: int, seed: int, lora: dict) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if lora["target_modules"] == "all-linear" and lora.get("layers_to_transform"):
        # PEFT takes a layer subset only with named modules: every linear layer's name but the head's
        head = model.get_output_embeddings()
        linear = {
            n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head
        }
        lora = {**lora, "target_modules": sorted(linear)}
    model = get_peft_model(model, LoraConfig(**lora, task_type="CAUSAL_LM"))
    rows = [json.loads(line) for line in Path(train_file).read_text().splitlines()]
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    dataset = [tokenizer(t, truncation=True, max_length=512) for t in texts]
    args = TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=2e-4,
        warmup_steps=0,
        report_to="none",
        save_strategy="no",
        seed=seed,
        logging_steps=steps,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    began = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - began
    model.save_pretrained(Path(out_dir) / "adapter")
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    model_dir, train_file, out_dir, steps, batch, seed, lora = sys.argv[1:8]
    print(json.dumps(main(model_dir, train_file, out_dir, int(steps), int(batch), int(seed), json.loads(lora))))
