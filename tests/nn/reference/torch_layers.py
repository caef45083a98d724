"""Python twins of the xgrad layers that PyTorch lacks, shared by the generators.

FeedForward is the labml.ai annotated-implementation block (also Darts'):
submodules layer1, layer2, dropout, activation, then linear_v when gated.
MonteCarloDropout subclasses nn.Dropout only so that its repr carries xgrad's
class name; at p = 0 or in eval mode it is the identity, as in xgrad.
"""
import torch
from torch import nn


class MonteCarloDropout(nn.Dropout):
    pass


class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.1, activation=None, is_gated=False,
                 bias1=True, bias2=True, bias_gate=True):
        super().__init__()
        self.layer1 = nn.Linear(d_model, d_ff, bias=bias1)
        self.layer2 = nn.Linear(d_ff, d_model, bias=bias2)
        self.dropout = MonteCarloDropout(dropout)
        self.activation = activation if activation is not None else nn.ReLU()
        self.is_gated = is_gated
        if is_gated:
            self.linear_v = nn.Linear(d_model, d_ff, bias=bias_gate)

    def forward(self, x):
        g = self.activation(self.layer1(x))
        if self.is_gated:
            x = g * self.linear_v(x)
        else:
            x = g
        x = self.dropout(x)
        return self.layer2(x)


# The named constructors of xgrad's FeedForward: gated, no biases.
GATES = {
    "glu": nn.Sigmoid,
    "bilinear": nn.Identity,
    "reglu": nn.ReLU,
    "geglu": nn.GELU,
    "swiglu": nn.SiLU,
}


def named_feed_forward(kind, d_model, d_ff, dropout=0.1):
    return FeedForward(d_model, d_ff, dropout, GATES[kind](), True, False, False, False)


def cpp_number(value, float32):
    """A C++ literal that reads back to exactly `value` (float32 values as float32)."""
    if float32:
        import numpy as np
        text = repr(float(np.float32(value)))
    else:
        text = repr(float(value))
    return text if ("." in text or "e" in text or "n" in text) else text + ".0"


def cpp_values(tensor, float32=False):
    return "{" + ", ".join(cpp_number(v, float32) for v in tensor.detach().reshape(-1).tolist()) + "}"


def cpp_shape(tensor):
    return "{" + ", ".join(str(d) for d in tensor.shape) + "}"


def cpp_array(tensor, float32=False):
    """`{shape, values}`: aggregate-initialises test reference::Array."""
    return "{" + cpp_shape(tensor) + ", " + cpp_values(tensor, float32) + "}"


def cpp_string(text):
    assert ")xg\"" not in text
    return 'R"xg(' + text + ')xg"'


class FeedForwardEncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer with xgrad's FeedForward as its feed-forward block.

    Children, in registration (and so state_dict / named_parameters) order:
    self_attn, feed_forward, norm1, norm2, dropout1, dropout2. forward() is
    PyTorch 1.13's TransformerEncoderLayer.forward slow path, with
    ff(x) = dropout2(feed_forward(x)) in place of linear2(dropout(act(linear1(x)))).
    """

    def __init__(self, d_model, nhead, feed_forward, dropout=0.1, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first)
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first

    def _sa_block(self, x, attn_mask, key_padding_mask):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.feed_forward(x))

    def forward(self, src, src_mask=None, src_key_padding_mask=None):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask))
            x = self.norm2(x + self._ff_block(x))
        return x
