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

#: An earlier answer of the model is rendered without its thinking, as Gemma 4's own template
#: does: any `<|channel>...<channel|>` span is cut out. The engines pass answers without their
#: thinking already, so for what they send this renders as the templates of demo models built
#: before it did (no rebuild needed).
_ANSWER_ONLY = (
    "{%- macro answer_only(text) -%}"
    "{%- set kept = namespace(text='') -%}"
    "{%- for part in text.split('<channel|>') -%}"
    "{%- set kept.text = kept.text + (part.split('<|channel>')[0] if '<|channel>' in part else part) -%}"
    "{%- endfor -%}"
    "{{- kept.text -}}"
    "{%- endmacro -%}"
)

CHAT_TEMPLATE = (
    _ANSWER_ONLY
    + "{{- bos_token -}}"
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
    "{%- set model = message['role'] == 'assistant' -%}"
    "{{- '<|turn>' + ('model' if model else message['role']) + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- answer_only(message['content']) if model else message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- answer_only(part['text']) if model else part['text'] -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<|image|>' -}}"
    "{%- elif part['type'] == 'audio' -%}{{- '<|audio|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<turn|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|turn>model\\n' -}}{%- endif -%}"
)
