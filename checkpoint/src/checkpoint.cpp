// Checkpoint layout, all in one safetensors file:
//   "model.<key>"                 the module's state_dict
//   "optimizer.<position>.<name>" per-parameter optimizer state (exp_avg, step, ...)
//   __metadata__: format, step, rng (generator state) and optimizer (groups as JSON)
#include "xgrad/checkpoint.hpp"

#include <nlohmann/json.hpp>

#include "xgrad/error.hpp"
#include "xgrad/nn/module.hpp"
#include "xgrad/optim/optimizer.hpp"
#include "xgrad/serialize.hpp"
#include "xgrad/tensor.hpp"

namespace xg {

namespace {
constexpr const char* kFormat = "xgrad-checkpoint-1";
const std::string kModel = "model.", kOptimizer = "optimizer.";
}  // namespace

void save_checkpoint(const std::string& path, nn::Module& module, const optim::Optimizer& optimizer,
                     std::int64_t step) {
    StateDict file;
    for (const auto& [key, t] : module.state_dict()) file.insert_or_assign(kModel + key, t);
    optim::OptimizerState state = optimizer.state_dict();
    for (const auto& [position, entries] : state.state) {
        for (const auto& [name, t] : entries) {
            file.insert_or_assign(fmt::format("{}{}.{}", kOptimizer, position, name), t);
        }
    }
    nlohmann::ordered_json groups = nlohmann::ordered_json::array();
    for (const auto& group : state.param_groups) {
        nlohmann::ordered_json options = nlohmann::ordered_json::object();
        for (const auto& [name, value] : group.options) options[name] = value;
        groups.push_back({{"options", options}, {"params", group.params}});
    }
    // Always safetensors, whatever the name: the metadata carries the step and RNG state.
    save(file, path, SaveFormat::Safetensors,
         {{"format", kFormat},
          {"step", std::to_string(step)},
          {"rng", get_rng_state()},
          {"optimizer",
           nlohmann::ordered_json{{"name", optimizer.name()}, {"param_groups", groups}}.dump()}});
}

std::int64_t load_checkpoint(const std::string& path, nn::Module& module,
                             optim::Optimizer& optimizer) {
    auto metadata = load_metadata(path);
    check(metadata.count("format") && metadata.at("format") == kFormat,
          "load_checkpoint: '{}' is not an xgrad checkpoint (expected format '{}')", path, kFormat);
    StateDict file = load(path);

    StateDict model_state;
    optim::OptimizerState state;
    std::map<std::size_t, StateDict> per_param;
    for (const auto& [key, t] : file) {
        if (key.starts_with(kModel)) {
            model_state.insert_or_assign(key.substr(kModel.size()), t);
        } else if (key.starts_with(kOptimizer)) {
            std::string rest = key.substr(kOptimizer.size());
            auto dot = rest.find('.');
            check(dot != std::string::npos, "load_checkpoint: '{}': malformed key '{}'", path, key);
            per_param[std::stoul(rest.substr(0, dot))].insert_or_assign(rest.substr(dot + 1), t);
        }
    }
    for (auto& [position, entries] : per_param) state.state.emplace_back(position, entries);
    std::int64_t step = 0;
    std::string rng;
    try {
        auto json = nlohmann::ordered_json::parse(metadata.at("optimizer"));
        check(json.at("name").get<std::string>() == optimizer.name(),
              "load_checkpoint: '{}' holds {} state (got a {} optimizer)", path,
              json.at("name").get<std::string>(), optimizer.name());
        for (const auto& group : json.at("param_groups")) {
            optim::ParamGroupState g;
            for (const auto& [name, value] : group.at("options").items())
                g.options.emplace_back(name, value.get<double>());
            g.params = group.at("params").get<std::vector<std::size_t>>();
            state.param_groups.push_back(std::move(g));
        }
        step = std::stoll(metadata.at("step"));
        rng = metadata.at("rng");
    } catch (const nlohmann::json::exception& e) {
        throw Error(fmt::format("load_checkpoint: '{}': malformed metadata ({})", path, e.what()));
    } catch (const std::out_of_range&) {
        throw Error(
            fmt::format("load_checkpoint: '{}': metadata lacks step, rng or optimizer", path));
    }

    // Both loads validate before changing anything; if the optimizer's fails
    // after the model's succeeded, put the model back.
    StateDict previous;
    for (const auto& [key, t] : module.state_dict()) previous.insert_or_assign(key, t.clone());
    module.load_state_dict(model_state);
    try {
        optimizer.load_state_dict(state);
        set_rng_state(rng);
    } catch (...) {
        module.load_state_dict(previous);
        throw;
    }
    return step;
}

}  // namespace xg
