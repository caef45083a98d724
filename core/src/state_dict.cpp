// StateDict: a vector keeps the order, a hash index makes lookups O(1).
#include "xgrad/state_dict.hpp"

namespace xg {

StateDict::StateDict(std::initializer_list<Entry> entries) {
    for (const auto& [key, value] : entries) insert_or_assign(key, value);
}

std::vector<std::string> StateDict::keys() const {
    std::vector<std::string> names;
    names.reserve(entries_.size());
    for (const auto& entry : entries_) names.push_back(entry.first);
    return names;
}

const Tensor& StateDict::at(const std::string& key) const {
    auto it = index_.find(key);
    check(it != index_.end(), "StateDict: no key '{}'", key);
    return entries_[it->second].second;
}

Tensor& StateDict::at(const std::string& key) {
    return const_cast<Tensor&>(static_cast<const StateDict&>(*this).at(key));
}

void StateDict::insert_or_assign(const std::string& key, Tensor value) {
    if (auto it = index_.find(key); it != index_.end()) {
        entries_[it->second].second = std::move(value);
        return;
    }
    index_.emplace(key, entries_.size());
    entries_.emplace_back(key, std::move(value));
}

bool StateDict::erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
    index_.clear();
    for (std::size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
    return true;
}

}  // namespace xg
