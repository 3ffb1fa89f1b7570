"""The demo variants' tokenizer vocabulary markers and chat template.

Real checkpoints bring their own template from the Hub. This one follows the same Gemma 4 markers
(turns, the `<|think|>` thinking switch, `<|tool>` declarations, media placeholders) so that the
demo variants exercise the same paths; its tool declarations are JSON rather than Gemma's own
literal syntax, a simplification that changes nothing downstream.
"""

from __future__ import annotations

#: Special tokens, in id order after the four basic ones. Gemma 4 has each as a single token.
BASIC_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]
MARKER_TOKENS = [
    "<|turn>", "<turn|>", "<|think|>", "<|channel>", "<channel|>",
    "<|tool>", "<tool|>", "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>",
    '<|"|>', "<|image>", "<|image|>", "<image|>", "<|audio>", "<|audio|>", "<audio|>", "<|video|>",
]

MEDIA_TOKENS = {
    "image_token": "<|image|>",
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "audio_token": "<|audio|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
}

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '' -%}"
    "{%- set thinking = enable_thinking is defined and enable_thinking -%}"
    "{%- if thinking or tools or system -%}"
    "{{- '<|turn>system\\n' -}}"
    "{%- if thinking -%}{{- '<|think|>\\n' -}}{%- endif -%}"
    "{%- if system is string -%}{{- system -}}"
    "{%- else -%}{%- for part in system if part['type'] == 'text' -%}{{- part['text'] -}}{%- endfor -%}"
    "{%- endif -%}"
    "{%- for tool in tools or [] -%}"
    "{%- set fn = tool['function'] if 'function' in tool else tool -%}"
    "{{- '<|tool>declaration:' + fn['name'] + '{description:<|\"|>' + (fn['description'] or '') -}}"
    "{{- '<|\"|>,parameters:' + (fn['parameters'] | tojson) + '}<tool|>' -}}"
    "{%- endfor -%}"
    "{{- '<turn|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages if message['role'] != 'system' -%}"
    "{{- '<|turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<|image|>' -}}"
    "{%- elif part['type'] == 'audio' -%}{{- '<|audio|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<turn|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|turn>model\\n' -}}{%- endif -%}"
)
