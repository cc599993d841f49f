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
