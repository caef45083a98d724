// torch.save's pickles: a tiny, safe unpickler (torch_pickle.cpp), and the
// state dict whose tensors a pickle describes (torch_state_dict.cpp). The
// unpickler knows the opcodes that state_dicts and training checkpoints use
// (protocols 2 to 5), builds plain values, and refuses every global but
// OrderedDict, torch's tensor rebuilders and storage types. Nothing in the
// file is ever executed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "serialize_io.hpp"

namespace xg {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

// A pickled Python value, reduced to what a checkpoint can contain.
struct Value {
    enum class Kind {
        None,
        Bool,
        Int,
        Float,
        String,
        Bytes,
        Tuple,
        List,
        Dict,
        Global,
        Storage,
        Tensor,
        Mark
    };
    Kind kind = Kind::None;
    std::int64_t integer = 0;  // Bool, Int; Storage: its element count in the pickle
    double real = 0;
    std::string text;             // String, Bytes; Global "module.name"; Storage key
    std::vector<ValuePtr> items;  // Tuple, List; Tensor: _rebuild_tensor_v2's arguments
    std::vector<std::pair<ValuePtr, ValuePtr>> dict;  // Dict (ordered)
    // Storage: its type ("torch.FloatStorage"), element size, and whether xgrad
    // holds that dtype (other types may sit in a checkpoint part nobody loads).
    std::string storage_type;
    std::size_t item_size = 0;
    bool supported = false;
    Dtype dtype = kFloat32;
};

// Python's name for a value's type, for errors: "int", "dict", "tensor".
const char* kind_name(const Value& value);

// Runs one pickle from `source`, starting at byte `offset`, to its STOP.
class Unpickler {
public:
    Unpickler(const ByteSource& source, std::uint64_t offset = 0)
        : source_(source), base_(offset) {}
    // A hostile pickle can build cycles (a list appended to itself) or nest values
    // thousands deep; cutting every link here frees them all, without recursion.
    // So the values run() returns live only as long as their Unpickler.
    ~Unpickler();
    Unpickler(const Unpickler&) = delete;
    Unpickler& operator=(const Unpickler&) = delete;

    ValuePtr run();
    // Where the pickle ended: the offset just past its STOP.
    std::uint64_t end() const { return base_ + at_; }
    // Every storage named by a persistent id, in the order they appear.
    std::vector<ValuePtr> storages;

private:
    bool push_scalar(unsigned char op);
    bool build_container(unsigned char op);
    bool memo_or_call(unsigned char op);

    ValuePtr make(Value::Kind kind);
    unsigned char byte();
    const char* take(std::uint64_t n);
    std::uint64_t le(std::size_t n);
    std::string line();
    void push(ValuePtr v) { stack_.push_back(std::move(v)); }
    void push_int(std::int64_t i);
    void push_string(std::uint64_t n, Value::Kind kind);
    ValuePtr pop();
    std::vector<ValuePtr> pop_mark();
    ValuePtr target(Value::Kind kind, const char* op);
    void memo(std::size_t index);
    ValuePtr recall(std::size_t index);
    ValuePtr global(const std::string& module, const std::string& name);
    ValuePtr persistent_load(const ValuePtr& pid);
    ValuePtr call(const ValuePtr& fn, const ValuePtr& args);

    const ByteSource& source_;
    std::uint64_t base_;  // where buffer_ starts in source_
    std::size_t at_ = 0;  // the next byte in buffer_
    std::string buffer_;  // read ahead in chunks
    std::vector<ValuePtr> stack_;
    std::unordered_map<std::size_t, ValuePtr> memo_;  // sparse: indices come from the file
    std::vector<ValuePtr> all_;                       // every value made, for the destructor
};

// A storage's bytes in the file: how many, and how to read them all.
struct Record {
    std::uint64_t nbytes = 0;
    std::string storage_type;
    std::function<void(char* out)> read;
};
using RecordOf = std::function<Record(const Value& storage)>;

// The state dict the pickled object `top` holds (or its entry options.key),
// each storage it uses read once through `record_of`.
StateDict build_state_dict(const ByteSource& source, const Value& top, const LoadOptions& options,
                           const RecordOf& record_of);

}  // namespace xg
