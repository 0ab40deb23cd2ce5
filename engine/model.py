"""The configurable decoder-only transformer, in Hugging Face format.

- Pre-norm blocks (layernorm or rmsnorm) with a final norm; attention with any number of key/value
  heads (mha, mqa, gqa) through fused `scaled_dot_product_attention`; plain or gated feed-forward.
- Positional encoding by name: sinusoidal, rope, alibi or yarn (positions.py).
- Module names follow Llama (`model.layers[i].self_attn.q_proj`, `mlp.gate_proj`, `lm_head`), so
  LoRA presets and the Llama export map by name.
- A transformers-5 KV cache (`cache=`, a DynamicCache): a new token's position comes from the cache
  length, or from `attention_mask` / `position_ids` under left padding, so `generate()` works.
- Importing this module registers "llmlab" with AutoConfig / AutoModelForCausalLM; `save_pretrained`
  copies this file, layers.py and positions.py beside the weights (`auto_map`), so plain
  transformers loads a saved model with `trust_remote_code=True`. Only relative imports of those two.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils.deprecation import deprecate_kwarg

from .layers import ACTIVATIONS, NORMALIZATIONS, Attention, ResidualProjection, RMSNorm
from .positions import POSITIONAL_ENCODINGS, PositionalEncoding

# The output field of the KV cache: transformers 5.24 renamed `past_key_values` to `cache`.
CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class LLMLabConfig(PreTrainedConfig):
    """Hugging Face names for the shape; `positional_encoding`, `normalization` and `hidden_act`
    (relu, gelu, leaky_relu, silu, swiglu) pick the parts. YaRN's settings live in `rope_parameters`
    (transformers 5's `rope_scaling`): {"rope_type": "yarn", "factor": f, "original_max_position_embeddings": n}.
    """

    model_type = "llmlab"
    keys_to_ignore_at_inference = [CACHE_FIELD]

    vocab_size: int = 256
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int | None = None
    intermediate_size: int = 768
    max_position_embeddings: int = 512
    hidden_act: str = "swiglu"
    positional_encoding: str = "rope"
    normalization: str = "rmsnorm"
    rope_theta: float = 10000.0
    rope_parameters: dict | None = None
    attention_bias: bool = False
    mlp_bias: bool = False
    dropout: float = 0.0
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    layer_norm_eps: float = 1e-5
    tie_word_embeddings: bool = True
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        super().__post_init__(**kwargs)
        problems = [
            f"{field}: {value!r} is not one of {', '.join(choices)}"
            for field, value, choices in (
                ("positional_encoding", self.positional_encoding, POSITIONAL_ENCODINGS),
                ("normalization", self.normalization, NORMALIZATIONS),
                ("hidden_act", self.hidden_act, ACTIVATIONS),
            )
            if value not in choices
        ]
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            problems.append("num_attention_heads must divide hidden_size, num_key_value_heads num_attention_heads")
        if (self.positional_encoding == "yarn") != (self.rope_parameters.get("rope_type") == "yarn"):
            problems.append('rope_parameters: rope_type "yarn" goes with positional_encoding "yarn" and only with it')
        if problems:
            raise ValueError("; ".join(problems))


class DecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: LLMLabConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = NORMALIZATIONS[config.normalization](config)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = NORMALIZATIONS[config.normalization](config)
        self.mlp = ACTIVATIONS[config.hidden_act](config)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def forward(self, x, rotation=None, mask=None, cache=None):
        x = x + self.dropout(self.self_attn(self.input_layernorm(x), rotation, mask, cache))
        return x + self.dropout(self.mlp(self.post_attention_layernorm(x)))


def causal_mask(q_len: int, k_len: int, device) -> torch.Tensor:
    """(q_len, k_len) bool: query i (at absolute k_len - q_len + i) sees keys j <= its position."""
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)


def self_mask(q_len: int, k_len: int, device) -> torch.Tensor:
    """(q_len, k_len) bool: each query's own key only."""
    return causal_mask(q_len, k_len, device).triu(k_len - q_len)


class LLMLabModel(nn.Module):
    """Embeddings, positional encoding, the blocks and the final norm: tokens -> hidden states."""

    def __init__(self, config: LLMLabConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.positions = POSITIONAL_ENCODINGS[config.positional_encoding](config)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = NORMALIZATIONS[config.normalization](config)

    def attention_mask(self, attention_mask, q_len: int, past: int, device, dtype) -> torch.Tensor | None:
        """None on the fused causal path; else a (B|1, H|1, q_len, k_len) bool or additive mask."""
        k_len = past + q_len
        bias = self.positions.bias(q_len, k_len, device, dtype)  # (H, q_len, k_len), causal -inf included
        if attention_mask is None:
            if bias is not None or q_len == 1 or past == 0:
                return bias
            return causal_mask(q_len, k_len, device)
        if attention_mask.shape[-1] != k_len:
            raise ValueError(f"attention_mask covers {attention_mask.shape[-1]} tokens, cache + input have {k_len}")
        allowed = causal_mask(q_len, k_len, device) & attention_mask[:, None, None, :].bool()  # (B, 1, q, k)
        allowed |= self_mask(q_len, k_len, device)  # a padding query sees itself: its row stays finite
        return allowed if bias is None else bias.masked_fill(~allowed, float("-inf"))

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        cache=None,
        inputs_embeds=None,
        output_hidden_states=False,
    ):
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        q_len = x.shape[1]
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None and attention_mask is not None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -q_len:]
        x = self.positions.embed(x, position_ids, past)
        rotation = self.positions.rotation(position_ids, past, q_len)
        mask = self.attention_mask(attention_mask, q_len, past, x.device, x.dtype)
        hidden_states = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, rotation, mask, cache=cache)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.norm(x)
        if hidden_states is not None:
            hidden_states[-1] = x
        return x, hidden_states


class LLMLabForCausalLM(PreTrainedModel, GenerationMixin):
    """The language model: LLMLabModel + lm_head (tied to the embeddings when configured)."""

    config_class = LLMLabConfig
    base_model_prefix = "model"
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _no_split_modules = ["DecoderLayer"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: LLMLabConfig):
        super().__init__(config)
        self.model = LLMLabModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, initializer_range); residual projections scaled by 1/sqrt(2 * n_layers) (GPT-2)."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            scale = math.sqrt(2 * self.config.num_hidden_layers) if isinstance(module, ResidualProjection) else 1.0
            init.normal_(module.weight, mean=0.0, std=std / scale)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (nn.LayerNorm, RMSNorm)):
            init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, PositionalEncoding):
            module.reset_tables()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        cache: DynamicCache | None = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """`attention_mask` (B, cache + T) only when there is padding: without it attention takes the fused
        causal path. `labels` are the inputs themselves (shifted here); -100 is ignored."""
        use_cache = use_cache if use_cache is not None else self.config.use_cache and not self.training
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        hidden, hidden_states = self.model(
            input_ids,
            attention_mask,
            position_ids,
            cache if use_cache else None,
            inputs_embeds,
            bool(output_hidden_states),
        )
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            **{CACHE_FIELD: cache if use_cache else None},
        )


LLMLabConfig.register_for_auto_class()
LLMLabForCausalLM.register_for_auto_class("AutoModelForCausalLM")
if LLMLabConfig.model_type not in CONFIG_MAPPING:  # the copy saved beside weights may load in the same process
    AutoConfig.register(LLMLabConfig.model_type, LLMLabConfig)
    AutoModelForCausalLM.register(LLMLabConfig, LLMLabForCausalLM)
