"""Generates parametrize_values.hpp: PyTorch's parametrizations on float64
modules, for tests/nn/test_parametrize.cpp.

- weight_norm on Linear(4, 3) with dim 0, 1 and None: the state_dict, the
  output and the gradients of sum(output * upstream) w.r.t. the input, the
  bias and the originals g (original0) and v (original1).
- spectral_norm on Linear(4, 3) (dim 0) and on a module holding a [2, 3, 4]
  weight (dim 1, forward x @ weight^T): the state_dict right after
  registration (PyTorch's random u and v, which the test loads), then
  training steps, each a forward, a backward and an SGD step on the
  parameters (p -= LR * grad), recording the output, the gradients and the
  buffers _u and _v after the forward; then one eval-mode forward, and the
  weight left by remove_parametrizations after it.
- orthogonal on float64 Linear layers, square (matrix_exp, cayley) and not
  (householder, matrix_exp, cayley; weights [n, k] with n > k and n < k), with
  and without use_trivialization: the state_dict and the weight right after
  registration; then a state whose original is moved off -I (or off the
  reflectors) below and above the diagonal, its output and the gradients of
  sum(output * upstream) w.r.t. the input, the bias and the original.

torch 1.13 has no torch.nn.utils.parametrizations.weight_norm: WeightNorm
below is PyTorch 2.1's _WeightNorm, registered the way 2.1 registers it, so
the keys are the new ones (parametrizations.weight.original0 / original1).

Run with /usr/bin/python3 (torch 1.13):
    /usr/bin/python3 tests/nn/reference/gen_parametrize.py
"""
import os

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from torch_layers import cpp_array, write_header

HERE = os.path.dirname(os.path.abspath(__file__))
f64 = torch.float64
IN, OUT, BATCH, STEPS, LR = 4, 3, 5, 2, 0.1

torch.manual_seed(1213)
WEIGHT = torch.randn(OUT, IN, dtype=f64) * 0.5
BIAS = torch.randn(OUT, dtype=f64) * 0.5
WEIGHT3 = torch.randn(2, 3, IN, dtype=f64) * 0.5
INPUTS = [torch.randn(BATCH, IN, dtype=f64) for _ in range(STEPS + 1)]
UPSTREAM = [torch.randn(BATCH, OUT, dtype=f64) for _ in range(STEPS + 1)]
UPSTREAM3 = [torch.randn(2, BATCH, 3, dtype=f64) for _ in range(STEPS + 1)]


class WeightNorm(nn.Module):
    """torch.nn.utils.parametrizations._WeightNorm (PyTorch >= 2.1)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return torch._weight_norm(weight_v, weight_g, self.dim)

    def right_inverse(self, weight):
        return torch.norm_except_dim(weight, 2, self.dim), weight


class Holder(nn.Module):
    """A [2, 3, 4] weight: y = x @ weight^T, [5, 4] -> [2, 5, 3]."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(WEIGHT3.clone())

    def forward(self, x):
        return torch.matmul(x, self.weight.transpose(-1, -2))


def linear():
    m = nn.Linear(IN, OUT).double()
    m.load_state_dict({"weight": WEIGHT, "bias": BIAS})
    return m


def named(items):
    return "{%s}" % ", ".join("{\"%s\", %s}" % (k, cpp_array(v.detach())) for k, v in items)


def step(m, x, upstream):
    """One training-mode forward and backward, as a SpectralStep initialiser."""
    m.zero_grad()
    x = x.clone().requires_grad_(True)
    y = m(x)
    buffers = dict(m.named_buffers())
    u = [buffers[k].clone() for k in buffers if k.endswith("_u")]
    v = [buffers[k].clone() for k in buffers if k.endswith("_v")]
    (y * upstream).sum().backward()
    grads = [(k, p.grad) for k, p in m.named_parameters()]
    return "{%s, %s, %s, %s, %s}" % (cpp_array(y.detach()), cpp_array(x.grad), named(grads),
                                     cpp_array(u[0]), cpp_array(v[0]))


def weight_norm_case(name, dim):
    m = linear()
    parametrize.register_parametrization(m, "weight", WeightNorm(dim), unsafe=True)
    state = [(k, t.clone()) for k, t in m.state_dict().items()]
    x = INPUTS[0].clone().requires_grad_(True)
    y = m(x)
    (y * UPSTREAM[0]).sum().backward()
    grads = [(k, p.grad) for k, p in m.named_parameters()]
    return "    {\"%s\", %s, %s, %s, %s}," % (name, named(state), cpp_array(y.detach()),
                                             cpp_array(x.grad), named(grads))


def spectral_case(name, m, upstream):
    state = [(k, t.clone()) for k, t in m.state_dict().items()]
    steps = []
    for i in range(STEPS):
        steps.append(step(m, INPUTS[i], upstream[i]))
        with torch.no_grad():
            for p in m.parameters():
                p -= LR * p.grad
    m.eval()
    with torch.no_grad():
        y_eval = m(INPUTS[STEPS])
    parametrize.remove_parametrizations(m, "weight")
    return "    {\"%s\", %s,\n     {%s},\n     %s, %s}," % (
        name, named(state), ",\n      ".join(steps), cpp_array(y_eval), cpp_array(m.weight.detach()))


ORTHOGONAL = [  # name, in_features, out_features, orthogonal_map, use_trivialization
    ("square", 4, 4, None, True),
    ("square_cayley", 4, 4, "cayley", True),
    ("tall", 3, 5, None, True),
    ("wide", 5, 3, None, True),
    ("tall_exp", 3, 5, "matrix_exp", True),
    ("wide_cayley", 5, 3, "cayley", True),
    ("square_plain", 4, 4, None, False),
    ("tall_householder_plain", 3, 5, "householder", False),
    ("wide_householder_plain", 5, 3, "householder", False),
]


def orthogonal_case(name, n_in, n_out, orthogonal_map, use_trivialization):
    weight = torch.randn(n_out, n_in, dtype=f64) * 0.5
    bias = torch.randn(n_out, dtype=f64) * 0.5
    x = torch.randn(BATCH, n_in, dtype=f64, requires_grad=True)
    upstream = torch.randn(BATCH, n_out, dtype=f64)
    m = nn.Linear(n_in, n_out).double()
    m.load_state_dict({"weight": weight, "bias": bias})
    parametrizations.orthogonal(m, orthogonal_map=orthogonal_map,
                                use_trivialization=use_trivialization)
    registered = [(k, t.clone()) for k, t in m.state_dict().items()]
    registered_weight = m.weight.detach().clone()
    off_diagonal = 1.0 - torch.eye(n_out, n_in, dtype=f64)
    with torch.no_grad():
        original = m.parametrizations.weight.original
        original += 0.4 * torch.randn(n_out, n_in, dtype=f64) * off_diagonal
    state = [(k, t.clone()) for k, t in m.state_dict().items()]
    y = m(x)
    (y * upstream).sum().backward()
    grads = [(k, p.grad) for k, p in m.named_parameters()]
    return "    {\"%s\", \"%s\", %s, %d, %d,\n     %s, %s,\n     %s, %s,\n     %s,\n     %s, %s, %s, %s, %s}," % (
        name, orthogonal_map or "", "true" if use_trivialization else "false", n_in, n_out,
        cpp_array(weight), cpp_array(bias), named(registered), cpp_array(registered_weight),
        named(state), cpp_array(x.detach()), cpp_array(upstream), cpp_array(y.detach()),
        cpp_array(x.grad), named(grads))


def main():
    wn = [weight_norm_case("dim0", 0), weight_norm_case("dim1", 1),
          weight_norm_case("none", None)]
    torch.manual_seed(7)
    sn_linear = parametrizations.spectral_norm(linear())
    sn_holder = parametrizations.spectral_norm(Holder(), dim=1)
    sn = [spectral_case("linear", sn_linear, UPSTREAM), spectral_case("holder", sn_holder, UPSTREAM3)]
    torch.manual_seed(31)
    orth = [orthogonal_case(*case) for case in ORTHOGONAL]
    body = [
        "",
        "using Named = std::vector<std::pair<std::string, Array>>;",
        "",
        "inline constexpr std::size_t in = %d, out = %d, batch = %d;" % (IN, OUT, BATCH),
        "inline constexpr double lr = %r;" % LR,
        "// The Linear's values before any parametrization, and Holder's [2, 3, 4] weight.",
        "inline const Array weight = %s;" % cpp_array(WEIGHT),
        "inline const Array bias = %s;" % cpp_array(BIAS),
        "inline const Array weight3 = %s;" % cpp_array(WEIGHT3),
        "// One input per training step, then the eval-mode input; upstream gradients likewise.",
        "inline const std::vector<Array> inputs = {%s};" % ", ".join(cpp_array(t) for t in INPUTS),
        "inline const std::vector<Array> upstream = {%s};" % ", ".join(cpp_array(t) for t in UPSTREAM),
        "inline const std::vector<Array> upstream3 = {%s};"
        % ", ".join(cpp_array(t) for t in UPSTREAM3),
        "",
        "// weight_norm(Linear(4, 3), dim): dim0, dim1 and none (dim=None, one norm over all).",
        "struct WeightNormCase {",
        "    std::string name;",
        "    Named state;  // state_dict() right after registration, in PyTorch's order",
        "    Array output, grad_input;",
        "    Named grads;  // named_parameters() order",
        "};",
        "inline const std::vector<WeightNormCase>& weight_norm_cases() {",
        "    static const std::vector<WeightNormCase> all = {",
    ] + wn + [
        "    };",
        "    return all;",
        "}",
        "",
        "// spectral_norm: a training-mode forward and backward per step (then p -= lr * grad),",
        "// an eval-mode forward of inputs.back(), and the weight remove_parametrizations leaves.",
        "struct SpectralStep {",
        "    Array output, grad_input;",
        "    Named grads;",
        "    Array u, v;  // the buffers after this step's forward",
        "};",
        "struct SpectralCase {",
        "    std::string name;  // linear: Linear(4, 3), dim 0; holder: weight [2, 3, 4], dim 1",
        "    Named state;  // right after registration: PyTorch's random u and v",
        "    std::vector<SpectralStep> steps;",
        "    Array eval_output, removed_weight;",
        "};",
        "inline const std::vector<SpectralCase>& spectral_cases() {",
        "    static const std::vector<SpectralCase> all = {",
    ] + sn + [
        "    };",
        "    return all;",
        "}",
        "",
        "// orthogonal on Linear(in, out), weight [out, in]: map \"\" is the default.",
        "struct OrthogonalCase {",
        "    std::string name, map;",
        "    bool use_trivialization;",
        "    std::size_t in, out;",
        "    Array weight, bias;  // before registration",
        "    Named registered;  // state_dict() right after registration",
        "    Array registered_weight;",
        "    Named state;  // the original moved off its registration value",
        "    Array input, upstream, output, grad_input;",
        "    Named grads;  // for state, in named_parameters() order",
        "};",
        "inline const std::vector<OrthogonalCase>& orthogonal_cases() {",
        "    static const std::vector<OrthogonalCase> all = {",
    ] + orth + [
        "    };",
        "    return all;",
        "}",
        "",
    ]
    write_header(
        os.path.join(HERE, "parametrize_values.hpp"),
        "gen_parametrize.py",
        [
            "weight_norm and spectral_norm on float64 modules: state_dicts, outputs, gradients",
            "of sum(output * upstream), spectral norm's _u and _v along training steps;",
            "orthogonal on float64 Linear layers.",
        ],
        "reference::parametrize",
        body,
    )


if __name__ == "__main__":
    main()
