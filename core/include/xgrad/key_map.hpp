// xg::KeyMap: renaming the keys of a StateDict and splitting and joining its
// tensors, so that a checkpoint laid out for another model loads into an xgrad
// module in one call:
//
//   ffn->load_state_dict(xg::KeyMap::llama_mlp("model.layers.0.mlp.")(xg::load(path)));
//
// A KeyMap is a list of rules, applied in order, each to what the one before
// produced. A key no rule touches keeps its tensor (the same storage) and its
// place; a renamed key keeps its place; the pieces of a split take the place
// of the split key, and a join that of the first of its keys in the StateDict.
// Split and joined tensors are new tensors without history.
//
// Every rule must match at least one key, since a rule that matches nothing is
// a typo or the wrong checkpoint, unless it is marked optional(). Patterns are
// ECMAScript std::regex matched against the whole key (std::regex_match):
// rename("weight", ...) renames the key "weight", not "fc.weight".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "xgrad/state_dict.hpp"

namespace xg {

class KeyMap {
public:
    // Keys that start with `prefix` lose it; the others stay as they are.
    KeyMap& strip_prefix(const std::string& prefix);
    // Every key gains `prefix`.
    KeyMap& add_prefix(const std::string& prefix);
    // Each key `pattern` matches becomes `replacement`, where $1, $2, ... stand
    // for the pattern's groups and $& for the key.
    KeyMap& rename(const std::string& pattern, const std::string& replacement);
    // Keeps only the keys `pattern` matches, or drops them.
    KeyMap& select(const std::string& pattern);
    KeyMap& drop(const std::string& pattern);
    // Cuts the tensor `key` along `dim` into names.size() equal parts, or into
    // parts of `sizes` (torch.split), named `names` in order.
    KeyMap& split(const std::string& key, int dim, const std::vector<std::string>& names);
    KeyMap& split(const std::string& key, int dim, const std::vector<std::int64_t>& sizes,
                  const std::vector<std::string>& names);
    // Concatenates the tensors `keys`, in that order, along `dim` (torch.cat) as `name`.
    KeyMap& join(const std::vector<std::string>& keys, int dim, const std::string& name);
    // Lets the rule added last match no key: then it does nothing. (A join
    // does nothing when none of its keys is there; some of them is an error.)
    KeyMap& optional();

    StateDict apply(const StateDict& state_dict) const;
    StateDict operator()(const StateDict& state_dict) const { return apply(state_dict); }

    // A Llama-style MLP (gate_proj, up_proj, down_proj, no biases; or Phi-3's
    // fused gate_up_proj, gate rows first) as the keys of FeedForward::swiglu:
    // layer1 (gate), linear_v (up), layer2 (down). With a prefix such as
    // "model.layers.0.mlp.", only the keys under it are kept, without it.
    static KeyMap llama_mlp(const std::string& prefix = "");

private:
    struct Rule {
        std::string text;  // how messages name it: "rename 'a' -> 'b'"
        bool optional = false;
        // The rule applied to a StateDict (told whether it is optional);
        // nullopt when it matched no key.
        std::function<std::optional<StateDict>(const StateDict&, bool is_optional)> run;
    };
    KeyMap& add(std::string text, decltype(Rule::run) run);

    std::vector<Rule> rules_;
};

}  // namespace xg
