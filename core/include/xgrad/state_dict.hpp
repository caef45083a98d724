// xg::StateDict: an insertion-ordered map of name -> Tensor, the unit that
// state_dict(), load_state_dict(), xg::save and xg::load exchange.
#pragma once

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "xgrad/tensor.hpp"

namespace xg {

class StateDict {
public:
    using Entry = std::pair<std::string, Tensor>;

    StateDict() = default;
    StateDict(std::initializer_list<Entry> entries);

    std::vector<std::string> keys() const;
    const Tensor& at(const std::string& key) const;  // throws xg::Error naming the key
    Tensor& at(const std::string& key);
    bool contains(const std::string& key) const { return index_.count(key) != 0; }
    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    // Replaces in place (keeping the key's position) or appends.
    void insert_or_assign(const std::string& key, Tensor value);
    bool erase(const std::string& key);

    auto begin() { return entries_.begin(); }
    auto end() { return entries_.end(); }
    auto begin() const { return entries_.begin(); }
    auto end() const { return entries_.end(); }

private:
    std::vector<Entry> entries_;
    std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace xg
