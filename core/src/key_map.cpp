// KeyMap (key_map.hpp): each rule is a closure over what it needs (a compiled
// pattern, the names, a dim) that builds the next StateDict in order; apply()
// chains them and owns the one check every rule shares, that it matched.
#include "xgrad/key_map.hpp"

#include <algorithm>
#include <numeric>
#include <regex>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg {

namespace {

// "a, b, c": the first names and how many more, since a checkpoint may hold thousands.
std::string name_list(const std::vector<std::string>& names) {
    constexpr std::size_t kShown = 20;
    if (names.empty()) return "none";
    std::string out;
    for (std::size_t i = 0; i < std::min(names.size(), kShown); ++i)
        out += (i ? ", " : "") + names[i];
    if (names.size() > kShown) out += fmt::format(", ... ({} more)", names.size() - kShown);
    return out;
}

std::string quoted(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& name : names) out += (out.empty() ? "'" : ", '") + name + "'";
    return out;
}

std::optional<std::string> first_duplicate(const std::vector<std::string>& names) {
    std::set<std::string> seen;
    for (const std::string& name : names)
        if (!seen.insert(name).second) return name;
    return std::nullopt;
}

std::regex compile(const std::string& pattern, const std::string& rule) {
    try {
        return std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        fail("KeyMap: {}: expected a valid regex (got '{}': {})", rule, pattern, e.what());
    }
}

// `text` as a regex that matches exactly it.
std::string regex_escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (std::string_view(R"(\^$.|?*+()[]{})").find(c) != std::string_view::npos) out += '\\';
        out += c;
    }
    return out;
}

// The next StateDict, built in order. Two tensors given one name is an error
// naming where both came from: keeping either would lose the other silently.
class Output {
public:
    explicit Output(const std::string& rule) : rule_(rule) {}

    void put(const std::string& name, const Tensor& t, const std::string& from) {
        if (name.empty()) fail("KeyMap: {} gives '{}' an empty name", rule_, from);
        auto [it, fresh] = from_.emplace(name, from);
        if (!fresh) {
            fail("KeyMap: {} gives two tensors the name '{}' (from '{}' and '{}')", rule_, name,
                 it->second, from);
        }
        out_.insert_or_assign(name, t);
    }
    StateDict take() { return std::move(out_); }

private:
    const std::string& rule_;
    StateDict out_;
    std::unordered_map<std::string, std::string> from_;
};

// Each key under its new name (nullopt from name_of: unchanged), in place;
// nullopt when no key was renamed.
std::optional<StateDict> rename_keys(
    const StateDict& in, const std::string& rule,
    const std::function<std::optional<std::string>(const std::string&)>& name_of) {
    Output out(rule);
    bool matched = false;
    for (const auto& [key, t] : in) {
        std::optional<std::string> name = name_of(key);
        matched = matched || name.has_value();
        out.put(name.value_or(key), t, key);
    }
    if (!matched) return std::nullopt;
    return out.take();
}

std::optional<StateDict> filter_keys(const StateDict& in, const std::regex& pattern, bool keep) {
    StateDict out;
    bool matched = false;
    for (const auto& [key, t] : in) {
        const bool match = std::regex_match(key, pattern);
        matched = matched || match;
        if (match == keep) out.insert_or_assign(key, t);
    }
    if (!matched) return std::nullopt;
    return out;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), std::size_t{0});
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = std::exchange(row[0], i);
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitute = diagonal + (a[i - 1] != b[j - 1] ? 1 : 0);
            diagonal = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
        }
    }
    return row[b.size()];
}

// Keys besides `present` that may be the missing ones under another name: one
// ends with the other (a prefix too many or too few), or they differ by a few characters.
std::vector<std::string> similar_keys(const StateDict& in, const std::vector<std::string>& missing,
                                      const std::set<std::string>& present) {
    constexpr std::size_t kShown = 5;
    std::vector<std::string> out;
    for (const std::string& key : in.keys()) {
        const bool similar =
            present.count(key) == 0 &&
            std::any_of(missing.begin(), missing.end(), [&](const auto& m) {
                return key.ends_with(m) || m.ends_with(key) ||
                       edit_distance(key, m) <= std::max<std::size_t>(2, m.size() / 4);
            });
        if (similar && out.size() < kShown) out.push_back(key);
    }
    return out;
}

// `sizes` empty: equal parts, one per name.
std::optional<StateDict> split_key(const StateDict& in, const std::string& rule,
                                   const std::string& key, int dim, std::vector<std::int64_t> sizes,
                                   const std::vector<std::string>& names) {
    if (!in.contains(key)) return std::nullopt;
    const Tensor& t = in.at(key);
    const Shape shape = t.shape();
    const auto rank = static_cast<int>(shape.size());
    if (dim < -rank || dim >= rank) {
        fail("KeyMap: {}: expected a dim in [{}, {}) for '{}' of shape {} (got {})", rule, -rank,
             rank, key, shape_str(shape), dim);
    }
    const auto size =
        static_cast<std::int64_t>(shape[static_cast<std::size_t>(dim < 0 ? dim + rank : dim)]);
    const auto parts = static_cast<std::int64_t>(names.size());
    if (sizes.empty()) {
        if (size % parts != 0) {
            fail(
                "KeyMap: {}: expected dim {} of '{}' (shape {}) to divide into {} equal parts "
                "(got size {})",
                rule, dim, key, shape_str(shape), parts, size);
        }
        sizes.assign(names.size(), size / parts);
    }
    const std::int64_t total = std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
    if (total != size) {
        fail("KeyMap: {}: expected sizes summing to {}, dim {} of '{}' (shape {}) (got {})", rule,
             size, dim, key, shape_str(shape), total);
    }
    std::vector<Tensor> pieces;
    {
        NoGradGuard no_grad;  // a checkpoint's tensors: values, no history
        pieces = split(t, sizes, dim);
    }
    Output out(rule);
    for (const auto& [k, v] : in) {
        if (k != key) {
            out.put(k, v, k);
            continue;
        }
        for (std::size_t i = 0; i < names.size(); ++i) out.put(names[i], pieces[i], key);
    }
    return out.take();
}

Tensor concatenated(const StateDict& in, const std::string& rule,
                    const std::vector<std::string>& keys, int dim) {
    std::vector<Tensor> parts;
    for (const std::string& key : keys) parts.push_back(in.at(key));
    auto described = [&] {  // "'q' [4, 8] float32, 'k' [4, 8] float32"
        std::string out;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            out += fmt::format("{}'{}' {} {}", i ? ", " : "", keys[i], shape_str(parts[i].shape()),
                               dtype_name(parts[i].dtype()));
        }
        return out;
    };
    // cat would promote; a fused weight of mixed dtypes is a wrong checkpoint.
    for (const Tensor& part : parts) {
        if (part.dtype() != parts.front().dtype())
            fail("KeyMap: {}: expected tensors of one dtype (got {})", rule, described());
    }
    NoGradGuard no_grad;  // a checkpoint's tensors: values, no history
    try {
        return cat(parts, dim);
    } catch (const Error& e) {
        fail("KeyMap: {}: cannot join {} ({})", rule, described(), e.what());
    }
}

std::optional<StateDict> join_keys(const StateDict& in, const std::string& rule,
                                   const std::vector<std::string>& keys, int dim,
                                   const std::string& name, bool optional) {
    std::vector<std::string> missing;
    for (const std::string& key : keys)
        if (!in.contains(key)) missing.push_back(key);
    if (optional && missing.size() == keys.size()) return std::nullopt;
    const std::set<std::string> joined_keys(keys.begin(), keys.end());
    if (!missing.empty()) {
        const std::vector<std::string> similar = similar_keys(in, missing, joined_keys);
        fail("KeyMap: {}: missing {} ({})", rule, quoted(missing),
             similar.empty() ? "no similar keys" : "similar keys: " + quoted(similar));
    }
    const Tensor joined = concatenated(in, rule, keys, dim);
    std::string from;
    for (const std::string& key : keys) from += (from.empty() ? "" : " + ") + key;
    Output out(rule);
    bool placed = false;
    for (const auto& [key, t] : in) {
        if (joined_keys.count(key) == 0) {
            out.put(key, t, key);
        } else if (!placed) {
            out.put(name, joined, from);
            placed = true;
        }
    }
    return out.take();
}

}  // namespace

KeyMap& KeyMap::add(std::string text, decltype(Rule::run) run) {
    rules_.push_back(Rule{std::move(text), false, std::move(run)});
    return *this;
}

KeyMap& KeyMap::strip_prefix(const std::string& prefix) {
    std::string text = fmt::format("strip_prefix '{}'", prefix);
    return add(text, [prefix, text](const StateDict& in, bool) {
        return rename_keys(in, text, [&](const std::string& key) -> std::optional<std::string> {
            if (!key.starts_with(prefix)) return std::nullopt;
            return key.substr(prefix.size());
        });
    });
}

KeyMap& KeyMap::add_prefix(const std::string& prefix) {
    std::string text = fmt::format("add_prefix '{}'", prefix);
    return add(text, [prefix, text](const StateDict& in, bool) {
        return rename_keys(in, text, [&](const std::string& key) { return prefix + key; });
    });
}

KeyMap& KeyMap::rename(const std::string& pattern, const std::string& replacement) {
    std::string text = fmt::format("rename '{}' -> '{}'", pattern, replacement);
    return add(
        text, [regex = compile(pattern, text), replacement, text](const StateDict& in, bool) {
            return rename_keys(in, text, [&](const std::string& key) -> std::optional<std::string> {
                std::smatch match;
                if (!std::regex_match(key, match, regex)) return std::nullopt;
                return match.format(replacement);
            });
        });
}

KeyMap& KeyMap::select(const std::string& pattern) {
    std::string text = fmt::format("select '{}'", pattern);
    return add(text, [regex = compile(pattern, text)](const StateDict& in, bool) {
        return filter_keys(in, regex, true);
    });
}

KeyMap& KeyMap::drop(const std::string& pattern) {
    std::string text = fmt::format("drop '{}'", pattern);
    return add(text, [regex = compile(pattern, text)](const StateDict& in, bool) {
        return filter_keys(in, regex, false);
    });
}

KeyMap& KeyMap::split(const std::string& key, int dim, const std::vector<std::string>& names) {
    return split(key, dim, {}, names);
}

KeyMap& KeyMap::split(const std::string& key, int dim, const std::vector<std::int64_t>& sizes,
                      const std::vector<std::string>& names) {
    std::string text = fmt::format("split '{}' along dim {} into [{}]", key, dim, name_list(names));
    if (!sizes.empty()) {
        std::vector<std::string> shown;
        for (std::int64_t size : sizes) shown.push_back(std::to_string(size));
        text += fmt::format(" of sizes [{}]", name_list(shown));
    }
    check(!names.empty(), "KeyMap: {}: expected at least one name (got none)", text);
    if (auto name = first_duplicate(names))
        fail("KeyMap: {}: expected distinct names (got '{}' twice)", text, *name);
    check(sizes.empty() || sizes.size() == names.size(),
          "KeyMap: {}: expected one size per name (got {} sizes for {} names)", text, sizes.size(),
          names.size());
    for (std::int64_t size : sizes)
        check(size >= 0, "KeyMap: {}: expected sizes >= 0 (got {})", text, size);
    return add(text, [key, dim, sizes, names, text](const StateDict& in, bool) {
        return split_key(in, text, key, dim, sizes, names);
    });
}

KeyMap& KeyMap::join(const std::vector<std::string>& keys, int dim, const std::string& name) {
    std::string text = fmt::format("join [{}] along dim {} -> '{}'", name_list(keys), dim, name);
    check(!keys.empty(), "KeyMap: {}: expected at least one key (got none)", text);
    if (auto key = first_duplicate(keys))
        fail("KeyMap: {}: expected distinct keys (got '{}' twice)", text, *key);
    return add(text, [keys, dim, name, text](const StateDict& in, bool optional) {
        return join_keys(in, text, keys, dim, name, optional);
    });
}

KeyMap& KeyMap::optional() {
    check(!rules_.empty(), "KeyMap: optional() marks the rule added last (got no rule)");
    rules_.back().optional = true;
    return *this;
}

StateDict KeyMap::apply(const StateDict& state_dict) const {
    StateDict current = state_dict;
    for (const Rule& rule : rules_) {
        std::optional<StateDict> next = rule.run(current, rule.optional);
        if (next) {
            current = std::move(*next);
        } else if (!rule.optional) {
            fail("KeyMap: {} matched no key (keys: {})", rule.text, name_list(current.keys()));
        }
    }
    return current;
}

KeyMap KeyMap::llama_mlp(const std::string& prefix) {
    KeyMap map;
    if (!prefix.empty()) map.select(regex_escape(prefix) + ".*").strip_prefix(prefix);
    // Either the separate gate and up projections or the fused one is there.
    map.rename(R"(gate_proj\.weight)", "layer1.weight").optional();
    map.rename(R"(up_proj\.weight)", "linear_v.weight").optional();
    map.split("gate_up_proj.weight", 0, {"layer1.weight", "linear_v.weight"}).optional();
    map.rename(R"(down_proj\.weight)", "layer2.weight");
    return map;
}

}  // namespace xg
