"""What the scripted models say, and the ChatML template some of them carry."""

# The reply every scripted model gives, one token per piece.
SCRIPT = ["Paris", " is", " the", " capital", " of", " France", "."]
REPLY = "".join(SCRIPT)
# The reply of `long_model`: 200 distinct tokens, long enough to act mid-reply.
LONG_SCRIPT = [f" w{i}" for i in range(200)]
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# SmolLM2-Instruct's ChatML template: it writes its own system prompt when a chat has none.
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + SMOLLM2_SYSTEM + "<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
