"""The reference: LoRA fine-tuning as a naive user writes it with the HF Trainer + PEFT.

Default TrainingArguments (fp32), the whole chat tokenised with the chat template, loss over all tokens
(labels = input_ids), padding to the longest in the batch, random batches.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)


def main(model_dir: str, train_file: str, out_dir: str, steps: int, batch_size: int, seed: int) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(
        model,
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
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
    model_dir, train_file, out_dir, steps, batch, seed = sys.argv[1:7]
    print(json.dumps(main(model_dir, train_file, out_dir, int(steps), int(batch), int(seed))))
