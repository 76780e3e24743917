"""`nhr-ray tune-judge`: tune a validator on human ratings (SPEC.md "Validator calibration").

Two ways, one dataset (data.py: ratings read and de-biased by calibrate's code, images from the
run, a seeded split by triplet) and one held-out check (heldout.py: calibrate's report on the
held-out triplets, judged through the same backend a mining run uses):
  local.py + lora.py   LoRA on a Qwen2.5-VL checkpoint with peft (the adapter loads with options.lora)
  gemini.py            a Vertex AI tuning job on a Gemini model (the endpoint is options.model)
"""
