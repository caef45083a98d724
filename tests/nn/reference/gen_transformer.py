"""Generates transformer_reference.hpp (and two state_dict fixtures): PyTorch
reference values for xgrad's MultiheadAttention, TransformerEncoderLayer,
TransformerEncoder and FeedForwardEncoderLayer, plus what PyTorch's module
hooks see on a MultiheadAttention call.

Run from anywhere with /usr/bin/python3 (torch 1.13):
    /usr/bin/python3 tests/nn/reference/gen_transformer.py
It writes, next to this script:
  * transformer_reference.hpp, namespace reference::transformer:
      - mha_cases:   nn.MultiheadAttention outputs, attention weights and the
                     gradients of sum(out * upstream_out) [+ sum(weights * upstream_weights)
                     when need_weights], with every mask flavour;
      - layer_cases: nn.TransformerEncoderLayer ("encoder_layer"),
                     nn.TransformerEncoder ("encoder") and the FeedForward-flavoured
                     twin torch_layers.FeedForwardEncoderLayer ("feed_forward_layer"),
                     outputs and gradients of sum(out * upstream);
      - hook_cases:  what forward pre / forward / full backward hooks of a
                     MultiheadAttention see, and query.grad with and without a
                     grad_input-replacing full backward hook;
      - reprs:       repr() of a few modules.
  * encoder_layer.pt, transformer_encoder.pt: torch.save(module.state_dict()) of one
    float32 layer case each (the case whose `fixture` field names the file).

Data: every weight and input is drawn from one seeded generator as
randn * scale rounded to a multiple of 1/256 (LayerNorm weights are 1 + that);
cases of one layout share their inputs and upstreams, modules of one
architecture share their weights (they differ in flags and masks), and the
header writes each such shared value once (namespace data) to stay small.
The rounding also shortens the literals and makes every weight and input
exactly representable in float32, so the float32 cases use the very same
values ("the float64 values rounded to float32" is exact). Biases and LayerNorm
parameters are random, never PyTorch's zero / one defaults. Generation is in
float64; a float32 case converts the module and inputs to float32, runs in
float32, and prints with cpp_array(t, float32=True). Every module runs in
.eval() mode: dropout (p = 0.1) is the identity. Masks: bool masks are stored as
0.0 / 1.0 (1 = True = masked out); float masks may hold -inf, printed as -kInf.
For size, every MHA configuration runs in float64 but only some also in float32
(MHA_CONFIGS says which); every layer configuration runs in both. Each float64
result is asserted against a first-principles recomputation (manual_mha,
manual_layer) and each fixture is reloaded with load_state_dict(strict=True).

PyTorch 1.13 facts this relies on (checked by the asserts below where possible):
  * The "fast paths" (torch._native_multi_head_attention,
    torch._transformer_encoder_layer_fwd, TransformerEncoder's nested-tensor
    conversion) are skipped whenever grad is enabled and a parameter requires
    grad, so every case here runs the Python/ATen slow path; each case asserts
    that train mode with dropout 0 gives bit-identical results.
  * nn.TransformerEncoder(..., enable_nested_tensor=...) exists (and mask_check);
    the encoder cases pass enable_nested_tensor=False when accepted.
  * F.multi_head_attention_forward, with a key_padding_mask: no attn_mask ->
    the kpm itself is the additive mask (so a float kpm is added, -inf masks);
    bool attn_mask -> logical_or with the kpm (a float kpm then masks wherever it
    is nonzero); float attn_mask -> attn_mask.masked_fill(kpm, -inf), right for a
    bool kpm, but a float kpm is then silently ignored (masked_fill with a float
    mask fills nothing in 1.13). Only kpm-alone float and bool-with-bool
    combinations are generated here, where 1.13 agrees with 2.x's "add both".
    Bool masks become 0 / -inf and are added to (q / sqrt(head_dim)) k^T
    (baddbmm); a query row with every key masked gives NaN, so no case has one.
  * (Not exercised: in no_grad eval, TransformerEncoder's nested-tensor fast
    path returns zeros at padded positions, and only max(unpadded length)
    positions: [2, 3, 8] for a [2, 4, 8] input whose longest sequence is 3.)
  * need_weights=False returns (out, None); averaged weights are
    sum over heads / num_heads, shape [N, L, S] even when batch_first.
  * Module.register_forward_pre_hook has no with_kwargs in 1.13 (added in 2.0):
    pre hooks see only the positional args. hook_cases then fill pre_hook_kwargs
    from the kwargs the call passed (pre_hook_kwargs_observed = false).
  * Full backward hooks (1.13 torch.utils.hooks.BackwardHook) wrap every
    positional Tensor argument (a bool mask too) in BackwardHookFunction:
    grad_input has one entry per positional argument; an input Tensor that does
    not require grad still gets a *defined* all-zero grad_input entry (the
    Function materialises zeros; for a bool mask a bool zero tensor) as long as
    some input requires grad; only when no input requires grad is every entry
    None (the hook then fires from the output side). grad_output has one entry
    per element of the output tuple, None for an output that is None or is not
    used by the loss. Returning grad_input * 3 for the bool-mask entry raises
    ("hook 'hook' has changed the type of value"), recorded in replace_error.
    The wrapping also makes mha(x, x, x) see three distinct tensors: grad_input
    is then (d/dquery, d/dkey, d/dvalue) separately, x.grad their sum.
  * repr: MultiheadAttention shows only its out_proj child, a
    NonDynamicallyQuantizableLinear (no embed_dim / num_heads); the activation of
    TransformerEncoderLayer is a function, not a child, so it is not shown; the
    ModuleList of TransformerEncoder lists (0) and (1) in full (later PyTorch
    versions fold repeated children into "(0-1): 2 x ...").
"""
import inspect
import math
import os
import textwrap
from collections import OrderedDict

import torch
from torch import nn

from torch_layers import (FeedForward, FeedForwardEncoderLayer, cpp_array, cpp_string,
                          named_feed_forward)

HERE = os.path.dirname(os.path.abspath(__file__))
E, H, FF = 8, 2, 16        # embed_dim / d_model, num_heads, dim_feedforward
L, S, N = 4, 5, 2          # target length, source length (cross attention), batch
P_DROP = 0.1               # every module's dropout; identity in eval mode
f64, f32 = torch.float64, torch.float32
GEN = torch.Generator().manual_seed(20240611)  # all data; module default inits use the global RNG
torch.manual_seed(0)


def rand(*shape, scale=1.0, offset=0.0):
    """randn * scale + offset, rounded to a multiple of 1/256 (exact in float32)."""
    x = torch.randn(*shape, generator=GEN, dtype=f64) * scale + offset
    return (x * 256).round() / 256


_DRAWN = {}


def shared_rand(role, *shape):
    """rand(*shape), drawn once per (role, shape): cases of one layout share their inputs
    (which keeps the header small: shared values are written once)."""
    if (role,) + shape not in _DRAWN:
        _DRAWN[(role,) + shape] = rand(*shape)
    return _DRAWN[(role,) + shape].clone()


def shape_name(role, t):
    return "%s_%s" % (role, "x".join(str(d) for d in t.shape))


def random_state(module):
    """A random float64 value for every state_dict entry of `module`, in its order; drawn once
    per set of keys and shapes, so modules of one architecture share their weights."""
    signature = tuple((k, tuple(v.shape)) for k, v in module.state_dict().items())
    if signature not in _DRAWN:
        _DRAWN[signature] = _random_state(module)
    return OrderedDict((k, v.clone()) for k, v in _DRAWN[signature].items())


def _random_state(module):
    norms = {name for name, m in module.named_modules() if isinstance(m, nn.LayerNorm)}
    state = OrderedDict()
    for key, value in module.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        is_norm_weight = owner in norms and leaf == "weight"
        state[key] = rand(*value.shape, scale=0.3, offset=1.0 if is_norm_weight else 0.0)
    return state


# ---------------------------------------------------------------------------- C++ text
def arr(t, float32=False):
    """cpp_array, with -inf spelled -kInf; None -> {} (an unused, empty Array)."""
    if t is None:
        return "{}"
    t = t.detach()
    if t.dtype == torch.bool:
        t = t.to(f64)
    text = cpp_array(t, float32)
    assert "nan" not in text, "NaN in a reference value"
    return text.replace("-inf", "-kInf")


def cbool(b):
    return "true" if b else "false"


def cstr(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def named(items, float32):
    return "{" + ",\n       ".join("{\"%s\", %s}" % (k, arr(v, float32)) for k, v in items) + "}"


def bools(values):
    return "{" + ", ".join(cbool(v) for v in values) + "}"


def strings(values):
    return "{" + ", ".join(cstr(v) for v in values) + "}"


class Shared:
    """Values that several cases hold (a float32 case's inputs and weights equal its
    float64 twin's, every MHA case has the same weights): each is emitted once, as
    data::<name>, and the cases' initializers name it."""
    MIN_CHARS = 200

    def __init__(self):
        self.count, self.names = {}, {}

    def note(self, records):
        for _, fields in records:
            for field in fields:
                self.count[field[1]] = self.count.get(field[1], 0) + 1

    def ref(self, text, name, ctype):
        if len(text) < self.MIN_CHARS or self.count.get(text, 0) < 2:
            return text
        if text not in self.names:
            name = "".join(c if c.isalnum() else "_" for c in name)
            assert name not in {n for n, _, _ in self.names.values()}, name
            self.names[text] = (name, ctype, text)
        return "data::" + self.names[text][0]

    def definitions(self):
        return ["inline const %s %s = %s;" % (ctype, name, text)
                for name, ctype, text in self.names.values()]


def field(key, text, share=None, ctype="Array"):
    """(field name, initializer text, name of the data:: constant if the same text recurs
    (None: never shared), C++ type of that constant)."""
    return (key, text, share, ctype)


def render(shared, fields):
    """One aggregate initializer, a field per line, each labelled with its name."""
    parts = []
    for key, text, share, ctype in fields:
        if share is not None:
            text = shared.ref(text, share, ctype)
        parts.append("/*%s*/ %s" % (key, text))
    return "    {" + ",\n     ".join(parts) + "}"


NAMED = "std::vector<std::pair<std::string, Array>>"


# ---------------------------------------------------------------------------- MultiheadAttention
MHA_STATE = random_state(nn.MultiheadAttention(E, H))  # shared by every MHA and hook case

# name, batch_first, bias, self_attention, key_padding_mask kind, attn_mask kind
# ("3d": float [N*H, L, S]; "causal": bool triu), need_weights, average_attn_weights,
# float32 twin. Cross attention: query [L, N, E], key and value [S, N, E] (distinct).
# To keep the header small, only the cases marked float32 also run in float32 (plain self
# and cross attention, a float key padding mask, a 3-D float mask, the causal mask with
# batch_first, need_weights=False); the others are float64 only.
MHA_CONFIGS = [
    ("self_attention", False, True, True, "", "", True, True, True),
    ("self_attention_batch_first", True, True, True, "", "", True, True, False),
    ("cross_attention", False, True, False, "", "", True, True, True),
    ("key_padding_mask_bool_batch_first", True, True, False, "bool", "", True, True, False),
    ("key_padding_mask_float", False, True, False, "float", "", True, True, True),
    ("attn_mask_bool", False, True, False, "", "bool", True, True, False),
    ("attn_mask_float", False, True, False, "", "float", True, True, False),
    ("attn_mask_float_3d", False, True, False, "", "3d", True, True, True),
    ("causal_bool_self_attention_batch_first", True, True, True, "", "causal", True, True, True),
    ("per_head_weights", False, True, False, "", "", True, False, False),
    ("need_weights_false", False, True, True, "", "", False, True, True),
    ("no_bias", False, False, False, "", "", True, True, False),
    ("key_padding_and_attn_mask_bool", False, True, False, "bool", "bool", True, True, False),
]


def kpm_bool(n, s):
    """Some keys masked out (mostly trailing, as padding is), never a whole row."""
    m = torch.zeros(n, s, dtype=torch.bool)
    m[0, s - 1] = True
    m[1, s - 2:] = True
    m[1, 0] = True
    return m


def mha_data(cfg):
    name, bf, bias, self_attn, kpm_kind, am_kind, need_w, avg, _ = cfg
    s = L if self_attn else S
    seq = (lambda n_, t_: (n_, t_, E)) if bf else (lambda n_, t_: (t_, n_, E))
    # Every case of one layout has the same query / key / value / upstreams; masks differ.
    d = {"query": shared_rand("query", *seq(N, L))}
    d["key"] = d["query"] if self_attn else shared_rand("key", *seq(N, s))
    d["value"] = d["query"] if self_attn else shared_rand("value", *seq(N, s))
    d["kpm"] = None
    if kpm_kind == "bool":
        d["kpm"] = kpm_bool(N, s)
    elif kpm_kind == "float":
        d["kpm"] = rand(N, s)
        d["kpm"][0, 1] = -math.inf
        d["kpm"][1, 3] = d["kpm"][1, 4] = -math.inf
    d["am"] = None
    if am_kind == "bool":
        d["am"] = torch.zeros(L, s, dtype=torch.bool)
        d["am"][0, 2] = d["am"][1, 0] = d["am"][1, 1] = d["am"][3, 4] = True
    elif am_kind == "float":
        d["am"] = rand(L, s)
        d["am"][2, 0] = d["am"][0, 3] = -math.inf
    elif am_kind == "3d":
        d["am"] = rand(N * H, L, s)
        d["am"][1, 0, 2] = d["am"][2, 3, 0] = d["am"][3, 1, 4] = -math.inf
    elif am_kind == "causal":
        d["am"] = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
    d["up_out"] = shared_rand("upstream_out", *seq(N, L))
    d["up_w"] = (shared_rand("upstream_weights", N, L, s) if avg else
                 shared_rand("upstream_weights", N, H, L, s)) if need_w else None
    return d


def run_mha(cfg, d, dtype, train=False):
    name, bf, bias, self_attn, kpm_kind, am_kind, need_w, avg, _ = cfg
    mha = nn.MultiheadAttention(E, H, bias=bias, batch_first=bf).to(dtype)
    mha.train() if train else mha.eval()
    mha.load_state_dict({k: MHA_STATE[k] for k in mha.state_dict()})
    cast = lambda t: None if t is None else (t if t.dtype == torch.bool else t.to(dtype))
    leaf = lambda t: t.detach().to(dtype).clone().requires_grad_(True)  # never d's own tensor
    q = leaf(d["query"])
    k = q if self_attn else leaf(d["key"])
    v = q if self_attn else leaf(d["value"])
    out, w = mha(q, k, v, key_padding_mask=cast(d["kpm"]), need_weights=need_w,
                 attn_mask=cast(d["am"]), average_attn_weights=avg)
    assert (w is None) == (not need_w)
    loss = (out * d["up_out"].to(dtype)).sum()
    if need_w:
        loss = loss + (w * d["up_w"].to(dtype)).sum()
    loss.backward()
    return mha, q, k, v, out, w


def manual_mha(q, k, v, state, kpm, am, batch_first, average):
    """Multi-head attention from first principles (float64), for the self-check."""
    if batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    t_len, n, e = q.shape
    s_len = k.shape[0]
    hd = e // H
    w_in = state["in_proj_weight"]
    b_in = state.get("in_proj_bias", torch.zeros(3 * e, dtype=f64))
    qp = q @ w_in[:e].T + b_in[:e]
    kp = k @ w_in[e:2 * e].T + b_in[e:2 * e]
    vp = v @ w_in[2 * e:].T + b_in[2 * e:]
    split = lambda x: x.reshape(x.shape[0], n, H, hd).permute(1, 2, 0, 3)  # [N, H, T, hd]
    scores = split(qp) @ split(kp).transpose(-1, -2) / math.sqrt(hd)    # [N, H, L, S]
    additive = lambda m: torch.zeros(m.shape, dtype=f64).masked_fill(m, -math.inf) \
        if m.dtype == torch.bool else m
    if am is not None:
        a = additive(am)
        scores = scores + (a.reshape(n, H, t_len, s_len) if a.dim() == 3 else a)
    if kpm is not None:
        scores = scores + additive(kpm)[:, None, None, :]
    weights = scores.softmax(-1)
    ctx = (weights @ split(vp)).permute(2, 0, 1, 3).reshape(t_len, n, e)
    out = ctx @ state["out_proj.weight"].T + state.get("out_proj.bias", torch.zeros(e, dtype=f64))
    if batch_first:
        out = out.transpose(0, 1)
    return out, (weights.mean(1) if average else weights)


def mha_records():
    records = []
    for cfg in MHA_CONFIGS:
        name, bf, bias, self_attn, kpm_kind, am_kind, need_w, avg, with_f32 = cfg
        d = mha_data(cfg)
        for dtype in (f64, f32) if with_f32 else (f64,):
            is32 = dtype == f32
            mha, q, k, v, out, w = run_mha(cfg, d, dtype)
            _, _, _, _, out_t, w_t = run_mha(cfg, d, dtype, train=True)  # dropout is 0: same path
            assert torch.equal(out, out_t) and (w is None or torch.equal(w, w_t)), name
            if not is32:
                m_out, m_w = manual_mha(d["query"], d["key"], d["value"], mha.state_dict(),
                                        d["kpm"], d["am"], bf, avg)
                assert torch.allclose(out, m_out, rtol=1e-12, atol=1e-12), name
                assert not need_w or torch.allclose(w, m_w, rtol=1e-12, atol=1e-12), name
            cast = lambda t: None if t is None else t.to(dtype)
            fields = [
                field("name", cstr(name)), field("float32", cbool(is32)),
                field("batch_first", cbool(bf)), field("bias", cbool(bias)),
                field("self_attention", cbool(self_attn)),
                field("query", arr(q, is32), shape_name("query", q)),
                field("key", arr(k, is32), shape_name("key", k)),
                field("value", arr(v, is32), shape_name("value", v)),
                field("key_padding_mask_kind", cstr(kpm_kind)),
                field("attn_mask_kind", cstr("bool" if am_kind in ("bool", "causal") else
                                             "float" if am_kind else "")),
                field("key_padding_mask", arr(cast(d["kpm"]), is32), name + "_key_padding_mask"),
                field("attn_mask", arr(cast(d["am"]), is32), name + "_attn_mask"),
                field("need_weights", cbool(need_w)), field("average_attn_weights", cbool(avg)),
                field("state_dict", named(mha.state_dict().items(), is32),
                      "mha_state_dict" if bias else "mha_state_dict_no_bias", NAMED),
                field("upstream_out", arr(cast(d["up_out"]), is32),
                      shape_name("upstream_out", d["up_out"])),
                field("upstream_weights", arr(cast(d["up_w"]), is32),
                      None if d["up_w"] is None else shape_name("upstream_weights", d["up_w"])),
                field("out", arr(out, is32)), field("weights", arr(w, is32)),
                field("grad_query", arr(q.grad, is32)),
                field("grad_key", arr(None if self_attn else k.grad, is32)),
                field("grad_value", arr(None if self_attn else v.grad, is32)),
                field("grads", named(((n_, p.grad) for n_, p in mha.named_parameters()), is32)),
            ]
            records.append(("%s_%s" % (name, "float32" if is32 else "float64"), fields))
    return records


# ---------------------------------------------------------------------------- layers
# name, kind, batch_first, norm_first, activation (encoder_layer / encoder),
# ffn_variant (feed_forward_layer), final_norm (encoder), src_mask kind ("float": random
# with two -inf, never a whole row; "causal": bool triu), src_key_padding_mask kind, fixture
# (written from the float32 run). Every layer case runs in float64 and float32.
# encoder_layer: each value of activation, norm_first and batch_first appears both without
# and with masks; the masks appear alone and together.
LAYER_CONFIGS = [
    ("encoder_layer_relu", "encoder_layer", False, False, "relu", "", False, "", "", ""),
    ("encoder_layer_gelu_norm_first_batch_first", "encoder_layer", True, True, "gelu", "", False,
     "", "", ""),
    ("encoder_layer_relu_norm_first_src_mask_float", "encoder_layer", False, True, "relu", "", False,
     "float", "", ""),
    ("encoder_layer_gelu_batch_first_causal_and_key_padding", "encoder_layer", True, False, "gelu", "",
     False, "causal", "bool", ""),
    ("encoder_layer_relu_src_mask_float_and_key_padding", "encoder_layer", False, False, "relu", "",
     False, "float", "bool", "encoder_layer.pt"),
    ("encoder_final_norm_causal", "encoder", False, False, "relu", "", True, "causal", "",
     "transformer_encoder.pt"),
    ("encoder_no_final_norm_gelu_batch_first_key_padding", "encoder", True, False, "gelu", "", False,
     "", "bool", ""),
    ("feed_forward_layer_swiglu_norm_first_causal", "feed_forward_layer", False, True, "", "swiglu",
     False, "causal", "", ""),
    ("feed_forward_layer_geglu_batch_first_key_padding", "feed_forward_layer", True, False, "",
     "geglu", False, "", "bool", ""),
    ("feed_forward_layer_relu_norm_first_batch_first_src_mask_float", "feed_forward_layer", True, True,
     "", "relu", False, "float", "", ""),
]
HAS_NESTED_FLAG = "enable_nested_tensor" in inspect.signature(nn.TransformerEncoder.__init__).parameters


def build_layer(cfg, p=P_DROP):
    name, kind, bf, nf, act, ffn, final_norm, *_ = cfg
    if kind == "feed_forward_layer":
        block = FeedForward(E, FF, p) if ffn == "relu" else named_feed_forward(ffn, E, FF, p)
        return FeedForwardEncoderLayer(E, H, block, dropout=p, batch_first=bf, norm_first=nf)
    layer = nn.TransformerEncoderLayer(E, H, FF, dropout=p, activation=act, batch_first=bf,
                                       norm_first=nf)
    if kind == "encoder_layer":
        return layer
    extra = {"enable_nested_tensor": False} if HAS_NESTED_FLAG else {}
    return nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(E) if final_norm else None, **extra)


def layer_data(cfg):
    name, kind, bf, nf, act, ffn, final_norm, mask_kind, kpm_kind, fixture = cfg
    shape = (N, L, E) if bf else (L, N, E)
    d = {"src": shared_rand("src", *shape), "up": shared_rand("upstream", *shape), "mask": None,
         "kpm": None}
    if mask_kind == "float":
        d["mask"] = rand(L, L)
        d["mask"][0, 2] = d["mask"][3, 1] = -math.inf
    elif mask_kind == "causal":
        d["mask"] = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
    if kpm_kind == "bool":
        d["kpm"] = kpm_bool(N, L)
        d["kpm"][1, 0] = False  # padding at the end only (left aligned), key 0 always visible
    return d


def run_layer(cfg, d, state, dtype, train=False):
    kind = cfg[1]
    model = build_layer(cfg, p=0.0 if train else P_DROP).to(dtype)
    model.train() if train else model.eval()
    model.load_state_dict(state)
    src = d["src"].detach().to(dtype).clone().requires_grad_(True)
    mask = d["mask"] if d["mask"] is None or d["mask"].dtype == torch.bool else d["mask"].to(dtype)
    if kind == "encoder":
        out = model(src, mask=mask, src_key_padding_mask=d["kpm"])
    else:
        out = model(src, src_mask=mask, src_key_padding_mask=d["kpm"])
    (out * d["up"].to(dtype)).sum().backward()
    return model, src, out


def manual_encoder_layer(cfg, x, state, mask, kpm, prefix=""):
    """TransformerEncoderLayer / FeedForwardEncoderLayer by hand (float64), for the self-check."""
    name, kind, bf, nf, act, ffn = cfg[:6]
    g = lambda key: state[prefix + key]
    ln = lambda t, n: nn.functional.layer_norm(t, (E,), g(n + ".weight"), g(n + ".bias"), 1e-5)
    mha_state = {k[len("self_attn."):]: state[prefix + k] for k in
                 ("self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                  "self_attn.out_proj.bias")}
    sa = lambda t: manual_mha(t, t, t, mha_state, kpm, mask, bf, True)[0]
    if kind == "feed_forward_layer":
        def ff(t):
            a = t @ g("feed_forward.layer1.weight").T
            if ffn == "relu":
                a = torch.relu(a + g("feed_forward.layer1.bias"))
                return a @ g("feed_forward.layer2.weight").T + g("feed_forward.layer2.bias")
            gate = nn.functional.silu(a) if ffn == "swiglu" else nn.functional.gelu(a)
            return (gate * (t @ g("feed_forward.linear_v.weight").T)) @ g("feed_forward.layer2.weight").T
    else:
        actf = torch.relu if act == "relu" else nn.functional.gelu
        ff = lambda t: actf(t @ g("linear1.weight").T + g("linear1.bias")) @ g("linear2.weight").T \
            + g("linear2.bias")
    if nf:
        x = x + sa(ln(x, "norm1"))
        return x + ff(ln(x, "norm2"))
    x = ln(x + sa(x), "norm1")
    return ln(x + ff(x), "norm2")


def manual_layer(cfg, d, state):
    kind, final_norm = cfg[1], cfg[6]
    if kind != "encoder":
        return manual_encoder_layer(cfg, d["src"], state, d["mask"], d["kpm"])
    x = d["src"]
    for i in range(2):
        x = manual_encoder_layer(cfg, x, state, d["mask"], d["kpm"], prefix="layers.%d." % i)
    if final_norm:
        x = nn.functional.layer_norm(x, (E,), state["norm.weight"], state["norm.bias"], 1e-5)
    return x


def state_name(cfg):
    kind, ffn, final_norm = cfg[1], cfg[5], cfg[6]
    if kind == "encoder":
        return "encoder_state_dict" if final_norm else "encoder_no_norm_state_dict"
    if kind == "feed_forward_layer":
        return "feed_forward_layer_%s_state_dict" % ("relu" if ffn == "relu" else "gated")
    return "encoder_layer_state_dict"


def layer_records():
    records = []
    for cfg in LAYER_CONFIGS:
        name, kind, bf, nf, act, ffn, final_norm, mask_kind, kpm_kind, fixture = cfg
        d = layer_data(cfg)
        state = random_state(build_layer(cfg))
        for dtype in (f64, f32):
            is32 = dtype == f32
            model, src, out = run_layer(cfg, d, state, dtype)
            _, _, out_t = run_layer(cfg, d, state, dtype, train=True)
            assert torch.equal(out, out_t), name
            if not is32:
                assert torch.allclose(out, manual_layer(cfg, d, state), rtol=1e-12, atol=1e-12), name
            fx = fixture if is32 else ""
            if fx:
                path = os.path.join(HERE, fx)
                torch.save(model.state_dict(), path)
                fresh = build_layer(cfg).to(dtype)
                fresh.load_state_dict(torch.load(path), strict=True)
                assert all(torch.equal(a, b) for a, b in
                           zip(fresh.state_dict().values(), model.state_dict().values()))
            cast = lambda t: None if t is None else t.to(dtype)
            fields = [
                field("name", cstr(name)), field("kind", cstr(kind)), field("float32", cbool(is32)),
                field("batch_first", cbool(bf)), field("norm_first", cbool(nf)),
                field("activation", cstr(act)), field("ffn_variant", cstr(ffn)),
                field("num_layers", "2" if kind == "encoder" else "1"),
                field("final_norm", cbool(final_norm)),
                field("src_mask_kind", cstr("bool" if mask_kind == "causal" else mask_kind)),
                field("src_key_padding_mask_kind", cstr(kpm_kind)),
                field("src", arr(src, is32), shape_name("src", src)),
                field("src_mask", arr(cast(d["mask"]), is32), name + "_src_mask"),
                field("src_key_padding_mask", arr(cast(d["kpm"]), is32),
                      name + "_src_key_padding_mask"),
                field("upstream", arr(cast(d["up"]), is32), shape_name("upstream", d["up"])),
                field("state_dict", named(model.state_dict().items(), is32), state_name(cfg), NAMED),
                field("out", arr(out, is32)), field("grad_src", arr(src.grad, is32)),
                field("grads", named(((n_, p.grad) for n_, p in model.named_parameters()), is32)),
                field("fixture", cstr(fx)),
            ]
            records.append(("%s_%s" % (name, "float32" if is32 else "float64"), fields))
    return records


# ---------------------------------------------------------------------------- hooks
# name, call (as written), q / k / v requires grad, key_padding_mask passed as 4th
# positional argument, need_weights (False: passed as a keyword), weights in the loss
HOOK_CONFIGS = [
    ("positional", "mha(q, k, v)", True, True, True, False, True, False),
    ("need_weights kw", "mha(q, k, v, need_weights=False)", True, True, True, False, False, False),
    ("positional mask", "mha(q, k, v, key_padding_mask)", True, True, True, True, True, False),
    ("only query requires grad", "mha(q, k, v)", True, False, False, False, True, False),
    ("weights in loss", "mha(q, k, v)", True, True, True, False, True, True),
    ("none requires grad but params", "mha(q, k, v)", False, False, False, False, True, False),
]
HOOK_DATA = {"query": shared_rand("query", L, N, E), "key": shared_rand("key", S, N, E),
             "value": shared_rand("value", S, N, E), "kpm": kpm_bool(N, S),
             "up_out": shared_rand("upstream_out", L, N, E),
             "up_w": shared_rand("upstream_weights", N, L, S)}  # the cross_attention case's
# PyTorch >= 2.0 only: register_forward_pre_hook(hook, with_kwargs=True).
PRE_HOOK_WITH_KWARGS = "with_kwargs" in inspect.signature(nn.Module.register_forward_pre_hook).parameters


def run_hooks(cfg, replace=None):
    """One call of a hooked MultiheadAttention(8, 2), then loss.backward().

    replace: None (hook returns None), "all" (hook returns grad_input with every
    defined entry * 3), "floating" (only floating-point entries * 3).
    """
    name, call, q_rg, k_rg, v_rg, kpm_positional, need_w, w_in_loss = cfg
    mha = nn.MultiheadAttention(E, H).to(f64).eval()
    mha.load_state_dict(MHA_STATE)
    q = HOOK_DATA["query"].clone().requires_grad_(q_rg)
    k = HOOK_DATA["key"].clone().requires_grad_(k_rg)
    v = HOOK_DATA["value"].clone().requires_grad_(v_rg)
    args = (q, k, v) + ((HOOK_DATA["kpm"],) if kpm_positional else ())
    kwargs = {} if need_w else {"need_weights": False}
    seen = {"backward_calls": 0, "pre_kwargs": list(kwargs), "pre_kwargs_observed": False}

    def pre(module, a):
        seen["pre_args"] = len(a)

    def pre_kw(module, a, kw):
        seen["pre_kwargs"], seen["pre_kwargs_observed"] = list(kw), True

    def fwd(module, a, output):
        seen["out_len"] = len(output) if isinstance(output, tuple) else 1
        seen["out_defined"] = [o is not None for o in output] if isinstance(output, tuple) else [True]

    def bwd(module, grad_input, grad_output):
        seen["backward_calls"] += 1
        seen["gi"] = [g is not None for g in grad_input]
        seen["go"] = [g is not None for g in grad_output]
        # Defined although that input does not require grad: materialised zeros.
        seen["gi_zero"] = [g is not None and not a.requires_grad for g, a in zip(grad_input, args)]
        assert all(not z or not grad_input[i].any() for i, z in enumerate(seen["gi_zero"]))
        if replace is None:
            return None
        scale = lambda g: g if g is None or (replace == "floating" and not g.is_floating_point()) \
            else g * 3
        return tuple(scale(g) for g in grad_input)

    handles = [mha.register_forward_pre_hook(pre), mha.register_forward_hook(fwd),
               mha.register_full_backward_hook(bwd)]
    if PRE_HOOK_WITH_KWARGS:
        handles.append(mha.register_forward_pre_hook(pre_kw, with_kwargs=True))
    out, w = mha(*args, **kwargs)
    loss = (out * HOOK_DATA["up_out"]).sum()
    if w_in_loss:
        loss = loss + (w * HOOK_DATA["up_w"]).sum()
    try:
        loss.backward()
        seen["error"] = ""
    except RuntimeError as e:
        seen["error"] = str(e)
    for h in handles:
        h.remove()
    seen["grad_query"] = q.grad
    return seen


def hook_records():
    records = []
    for cfg in HOOK_CONFIGS:
        name, call, q_rg, k_rg, v_rg, kpm_positional, need_w, w_in_loss = cfg
        plain = run_hooks(cfg)
        assert plain["error"] == "" and plain["backward_calls"] == 1
        replaced = run_hooks(cfg, "all")
        replace_error = replaced["error"]
        if replace_error:  # 1.13: "* 3" turns the bool mask's zero grad into int64
            replaced = run_hooks(cfg, "floating")
            assert replaced["error"] == ""
        if q_rg:
            assert torch.allclose(replaced["grad_query"], 3 * plain["grad_query"], rtol=1e-14)
        else:
            assert plain["grad_query"] is None and replaced["grad_query"] is None
        fields = [
            field("name", cstr(name)), field("call", cstr(call)),
            field("pre_hook_args", str(plain["pre_args"])),
            field("pre_hook_kwargs", strings(plain["pre_kwargs"])),
            field("forward_hook_output_len", str(plain["out_len"])),
            field("grad_output_defined", bools(plain["go"])),
            field("grad_input_defined", bools(plain["gi"])),
            field("grad_query", arr(plain["grad_query"])),
            field("grad_query_replaced", arr(replaced["grad_query"])),
            field("query_requires_grad", cbool(q_rg)), field("key_requires_grad", cbool(k_rg)),
            field("value_requires_grad", cbool(v_rg)),
            field("key_padding_mask_positional", cbool(kpm_positional)),
            field("need_weights", cbool(need_w)), field("weights_in_loss", cbool(w_in_loss)),
            field("query", arr(HOOK_DATA["query"]), shape_name("query", HOOK_DATA["query"])),
            field("key", arr(HOOK_DATA["key"]), shape_name("key", HOOK_DATA["key"])),
            field("value", arr(HOOK_DATA["value"]), shape_name("value", HOOK_DATA["value"])),
            field("key_padding_mask", arr(HOOK_DATA["kpm"]), "hook_key_padding_mask"),
            field("upstream_out", arr(HOOK_DATA["up_out"]),
                  shape_name("upstream_out", HOOK_DATA["up_out"])),
            field("upstream_weights", arr(HOOK_DATA["up_w"]),
                  shape_name("upstream_weights", HOOK_DATA["up_w"])),
            field("state_dict", named(MHA_STATE.items(), False), "mha_state_dict", NAMED),
            field("pre_hook_kwargs_observed", cbool(plain["pre_kwargs_observed"])),
            field("forward_hook_output_defined", bools(plain["out_defined"])),
            field("backward_hook_calls", str(plain["backward_calls"])),
            field("grad_input_zero_filled", bools(plain["gi_zero"])),
            field("replace_error", cstr(replace_error)),
        ]
        records.append((name, fields))
    return records


# ---------------------------------------------------------------------------- header
STRUCTS = """\
// One nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=batch_first) call,
// mha(query, key, value, key_padding_mask=, need_weights=, attn_mask=, average_attn_weights=),
// eval mode. loss = sum(out * upstream_out) + (need_weights ? sum(weights * upstream_weights) : 0).
// Every configuration runs in float64; about half also in float32 (same name, float32 = true).
struct MhaCase {
    std::string name;
    bool float32, batch_first, bias, self_attention;  // self_attention: query, key and value are one tensor (pass the same tensor three times)
    Array query, key, value;                            // key/value equal to query when self_attention
    std::string key_padding_mask_kind, attn_mask_kind;  // "" (none), "bool", "float"
    Array key_padding_mask, attn_mask;                  // bool masks stored as 0.0/1.0 (1 = True = masked out); float ones may hold -kInf
    bool need_weights, average_attn_weights;
    std::vector<std::pair<std::string, Array>> state_dict;   // PyTorch's keys, in state_dict order
    Array upstream_out, upstream_weights;                   // upstream_weights unused (empty) when !need_weights
    Array out, weights;                                     // weights unused (empty) when !need_weights
    Array grad_query, grad_key, grad_value;                 // for self_attention: grad_query holds the whole input gradient, the others unused (empty)
    std::vector<std::pair<std::string, Array>> grads;      // named_parameters order
};

// kind "encoder_layer": nn.TransformerEncoderLayer(embed_dim, num_heads, dim_feedforward, 0.1,
// activation, batch_first=, norm_first=); "encoder": nn.TransformerEncoder(that layer, num_layers,
// norm=final_norm ? LayerNorm(embed_dim) : None, enable_nested_tensor=False);
// "feed_forward_layer": FeedForwardEncoderLayer(embed_dim, num_heads, FeedForward, 0.1,
// batch_first=, norm_first=) with FeedForward::swiglu / geglu(embed_dim, dim_feedforward, 0.1)
// or, for "relu", FeedForward(embed_dim, dim_feedforward, 0.1) (ungated ReLU, with biases).
// Eval mode; loss = sum(out * upstream).
struct LayerCase {
    std::string name;
    std::string kind;            // "encoder_layer" (nn.TransformerEncoderLayer), "encoder" (nn.TransformerEncoder), "feed_forward_layer" (the FFN-flavoured twin)
    bool float32, batch_first, norm_first;
    std::string activation;      // "relu" or "gelu" (encoder_layer / encoder); "" for feed_forward_layer
    std::string ffn_variant;     // feed_forward_layer: "swiglu", "geglu", "relu" (plain FeedForward, ungated, with biases); "" otherwise
    int num_layers;              // encoder: 2; others 1
    bool final_norm;             // encoder: whether TransformerEncoder got norm=LayerNorm(d_model)
    std::string src_mask_kind, src_key_padding_mask_kind;   // "", "bool", "float"
    Array src, src_mask, src_key_padding_mask, upstream;    // absent masks empty; bool masks 0.0/1.0
    std::vector<std::pair<std::string, Array>> state_dict;
    Array out, grad_src;
    std::vector<std::pair<std::string, Array>> grads;   // named_parameters order
    const char* fixture;         // "encoder_layer.pt" / "transformer_encoder.pt" / "": torch.save(state_dict()) of this case
};

// What PyTorch's hooks see on one call of nn.MultiheadAttention(8, 2) (float64, eval, state_dict
// below). loss = sum(out * upstream_out) (+ sum(weights * upstream_weights) if weights_in_loss).
struct HookCase {
    std::string name;
    std::string call;                    // the call, e.g. "mha(q, k, v)", "mha(q, k, v, need_weights=False)"
    int pre_hook_args;                   // len(args) a forward pre hook sees
    std::vector<std::string> pre_hook_kwargs;   // kwargs keys a with_kwargs=True pre hook sees (see pre_hook_kwargs_observed)
    int forward_hook_output_len;         // len(output): the (out, weights) tuple
    std::vector<bool> grad_output_defined;      // full backward hook: which grad_output entries are not None
    std::vector<bool> grad_input_defined;       // full backward hook: which grad_input entries are not None (one per positional arg)
    Array grad_query;                    // query.grad after loss.backward() (no replacement); empty if q needs no grad
    Array grad_query_replaced;           // query.grad when the full backward hook returns grad_input with every defined entry * 3
                                         // (if that raised, see replace_error: every defined floating-point entry * 3)
    bool query_requires_grad, key_requires_grad, value_requires_grad;
    bool key_padding_mask_positional;    // the call passes key_padding_mask as the 4th positional argument
    bool need_weights;                   // false: the call passes need_weights=False as a keyword
    bool weights_in_loss;
    Array query, key, value, key_padding_mask, upstream_out, upstream_weights;
    std::vector<std::pair<std::string, Array>> state_dict;
    bool pre_hook_kwargs_observed;       // false: PyTorch (1.13) has no with_kwargs pre hooks; pre_hook_kwargs lists the call's kwargs
    std::vector<bool> forward_hook_output_defined;   // which output entries are not None (need_weights=False: weights is None)
    int backward_hook_calls;             // how often the full backward hook ran
    std::vector<bool> grad_input_zero_filled;        // PyTorch 1.13: defined (all-zero) although that input does not require grad
    std::string replace_error;           // RuntimeError PyTorch raised for the "every defined entry * 3" hook, "" if none
};"""


def main():
    groups = [("MhaCase", "mha_cases", mha_records()), ("LayerCase", "layer_cases", layer_records()),
              ("HookCase", "hook_cases", hook_records())]
    shared = Shared()
    for _, _, records in groups:
        shared.note(records)
    rendered = [(ctype, var, [(n, render(shared, fields)) for n, fields in records])
                for ctype, var, records in groups]
    reprs = OrderedDict([
        ("mha", repr(nn.MultiheadAttention(8, 2))),
        ("mha_nobias_batch_first", repr(nn.MultiheadAttention(8, 2, bias=False, batch_first=True))),
        ("encoder_layer", repr(nn.TransformerEncoderLayer(8, 2, 16))),
        ("encoder_layer_gelu_norm_first",
         repr(nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", norm_first=True))),
        ("encoder", repr(nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2,
                                               norm=nn.LayerNorm(8)))),
    ])
    out = [
        "// clang-format off",
        "// Generated by gen_transformer.py from PyTorch %s; do not edit." % torch.__version__,
        "// Regenerate: /usr/bin/python3 tests/nn/reference/gen_transformer.py (also writes",
        "// encoder_layer.pt and transformer_encoder.pt). Its docstring describes the data and the",
        "// PyTorch 1.13 behaviour these values encode. An empty Array ({}) is absent / unused.",
        "#pragma once",
        "",
        "#include <limits>",
        "#include <string>",
        "#include <utility>",
        "#include <vector>",
        "",
        "#include \"nn/reference/array.hpp\"",
        "",
        "namespace reference::transformer {",
        "",
        "inline constexpr int embed_dim = %d, num_heads = %d, dim_feedforward = %d;" % (E, H, FF),
        "inline constexpr int target_len = %d, source_len = %d, batch = %d;  // L, S, N" % (L, S, N),
        "inline constexpr double kInf = std::numeric_limits<double>::infinity();",
        "",
        STRUCTS,
        "",
        "// Values several cases hold (a float32 case's inputs and weights equal its float64",
        "// twin's exactly), written once; the cases below copy them.",
        "namespace data {",
    ]
    out += shared.definitions()
    out += ["}  // namespace data", ""]
    for ctype, var, recs in rendered:
        out.append("// " + "\n// ".join(textwrap.wrap(", ".join(n for n, _ in recs), 96)))
        out.append("inline const std::vector<%s> %s = {" % (ctype, var))
        out.append(",\n".join(r for _, r in recs))
        out += ["};", ""]
    out += ["// repr() of each module, by name.",
            "inline const std::vector<std::pair<std::string, std::string>> reprs = {"]
    out += ["    {\"%s\", %s}," % (k, cpp_string(v)) for k, v in reprs.items()]
    out += ["};", "", "}  // namespace reference::transformer", ""]
    with open(os.path.join(HERE, "transformer_reference.hpp"), "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
