// The unpickler of torch.save files; see torch_pickle.hpp.
#include "torch_pickle.hpp"

#include <algorithm>
#include <cstring>

namespace xg {

namespace {

// The storage types torch.save names, each with its element size and the
// dtype it holds. xgrad has no complex dtypes: those two are known so that a
// complex tensor in a checkpoint part nobody loads does not stop the part
// that is loaded.
struct StorageType {
    const char* name;
    std::size_t item_size;
    bool supported;
    Dtype dtype;
};
constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", 4, true, Dtype::Float32},
    {"torch.DoubleStorage", 8, true, Dtype::Float64},
    {"torch.LongStorage", 8, true, Dtype::Int64},
    {"torch.HalfStorage", 2, true, Dtype::Float16},
    {"torch.BFloat16Storage", 2, true, Dtype::BFloat16},
    {"torch.IntStorage", 4, true, Dtype::Int32},
    {"torch.ShortStorage", 2, true, Dtype::Int16},
    {"torch.CharStorage", 1, true, Dtype::Int8},
    {"torch.ByteStorage", 1, true, Dtype::UInt8},
    {"torch.BoolStorage", 1, true, Dtype::Bool},
    {"torch.ComplexFloatStorage", 8, false, Dtype::Float32},
    {"torch.ComplexDoubleStorage", 16, false, Dtype::Float32},
};

const StorageType* storage_type(const std::string& name) {
    for (const auto& type : kStorageTypes) {
        if (name == type.name) return &type;
    }
    return nullptr;
}

constexpr std::uint64_t kReadAhead = 64 * 1024;

}  // namespace

const char* kind_name(const Value& value) {
    switch (value.kind) {
        case Value::Kind::None: return "None";
        case Value::Kind::Bool: return "a bool";
        case Value::Kind::Int: return "an int";
        case Value::Kind::Float: return "a float";
        case Value::Kind::String: return "a str";
        case Value::Kind::Bytes: return "bytes";
        case Value::Kind::Tuple: return "a tuple";
        case Value::Kind::List: return "a list";
        case Value::Kind::Dict: return "a dict";
        case Value::Kind::Global: return "a class or function";
        case Value::Kind::Storage: return "a storage";
        case Value::Kind::Tensor: return "a tensor";
        case Value::Kind::Mark: break;
    }
    return "a pickle mark";
}

Unpickler::~Unpickler() {
    for (auto& v : all_) {
        v->items.clear();
        v->dict.clear();
    }
}

ValuePtr Unpickler::run() {
    while (true) {
        unsigned char op = byte();
        if (op == '.') return pop();  // STOP
        if (!push_scalar(op) && !build_container(op) && !memo_or_call(op)) {
            fail("load: '{}': unsupported pickle opcode 0x{:02x} at byte {}", source_.path(), op,
                 end() - 1);
        }
    }
}

// None, bools, ints, floats, strings and bytes.
bool Unpickler::push_scalar(unsigned char op) {
    switch (op) {
        case 'N': push(make(Value::Kind::None)); return true;
        case 0x88:
        case 0x89: {  // NEWTRUE / NEWFALSE
            auto v = make(Value::Kind::Bool);
            v->integer = op == 0x88;
            push(v);
            return true;
        }
        case 'J': push_int(static_cast<std::int32_t>(le(4))); return true;  // BININT
        case 'K': push_int(static_cast<std::int64_t>(le(1))); return true;  // BININT1
        case 'M': push_int(static_cast<std::int64_t>(le(2))); return true;  // BININT2
        case 0x8a: {                                                        // LONG1
            std::size_t n = byte();
            check(n <= 8, "load: '{}': integer too large in pickle", source_.path());
            std::uint64_t raw = le(n);
            if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~0ULL << (8 * n);  // sign
            push_int(static_cast<std::int64_t>(raw));
            return true;
        }
        case 'G': {  // BINFLOAT (big-endian)
            std::uint64_t raw = 0;
            for (int i = 0; i < 8; ++i) raw = (raw << 8) | byte();
            auto v = make(Value::Kind::Float);
            std::memcpy(&v->real, &raw, 8);
            push(v);
            return true;
        }
        case 'X':                                                         // BINUNICODE
        case 'T': push_string(le(4), Value::Kind::String); return true;   // BINSTRING
        case 0x8c:                                                        // SHORT_BINUNICODE
        case 'U': push_string(byte(), Value::Kind::String); return true;  // SHORT_BINSTRING
        case 0x8d: push_string(le(8), Value::Kind::String); return true;  // BINUNICODE8
        case 'B': push_string(le(4), Value::Kind::Bytes); return true;    // BINBYTES
        case 'C': push_string(byte(), Value::Kind::Bytes); return true;   // SHORT_BINBYTES
        case 0x8e: push_string(le(8), Value::Kind::Bytes); return true;   // BINBYTES8
        default: return false;
    }
}

// Marks, tuples, lists and dicts, and what fills them.
bool Unpickler::build_container(unsigned char op) {
    switch (op) {
        case '(': push(make(Value::Kind::Mark)); return true;   // MARK
        case '0': pop(); return true;                           // POP
        case '1': pop_mark(); return true;                      // POP_MARK
        case ')': push(make(Value::Kind::Tuple)); return true;  // EMPTY_TUPLE
        case ']': push(make(Value::Kind::List)); return true;   // EMPTY_LIST
        case '}': push(make(Value::Kind::Dict)); return true;   // EMPTY_DICT
        case 't': {                                             // TUPLE
            auto t = make(Value::Kind::Tuple);
            t->items = pop_mark();
            push(t);
            return true;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
            auto t = make(Value::Kind::Tuple);
            t->items.resize(op - 0x84);
            for (auto it = t->items.rbegin(); it != t->items.rend(); ++it) *it = pop();
            push(t);
            return true;
        }
        case 'a': {  // APPEND
            auto v = pop();
            target(Value::Kind::List, "APPEND")->items.push_back(v);
            return true;
        }
        case 'e': {  // APPENDS
            auto values = pop_mark();
            auto l = target(Value::Kind::List, "APPENDS");
            l->items.insert(l->items.end(), values.begin(), values.end());
            return true;
        }
        case 's': {  // SETITEM
            auto v = pop();
            auto k = pop();
            target(Value::Kind::Dict, "SETITEM")->dict.emplace_back(k, v);
            return true;
        }
        case 'u': {  // SETITEMS
            auto values = pop_mark();
            check(values.size() % 2 == 0, "load: '{}': odd SETITEMS in pickle", source_.path());
            auto d = target(Value::Kind::Dict, "SETITEMS");
            for (std::size_t i = 0; i < values.size(); i += 2)
                d->dict.emplace_back(values[i], values[i + 1]);
            return true;
        }
        default: return false;
    }
}

// The memo, globals, persistent ids and calls; framing.
bool Unpickler::memo_or_call(unsigned char op) {
    switch (op) {
        case 0x80: byte(); return true;                       // PROTO
        case 0x95: take(8); return true;                      // FRAME
        case 'q': memo(byte()); return true;                  // BINPUT
        case 'r': memo(le(4)); return true;                   // LONG_BINPUT
        case 0x94: memo(memo_.size()); return true;           // MEMOIZE
        case 'h': push(recall(byte())); return true;          // BINGET
        case 'j': push(recall(le(4))); return true;           // LONG_BINGET
        case 'Q': push(persistent_load(pop())); return true;  // BINPERSID
        case 'b': pop(); return true;  // BUILD: state_dict._metadata (version info), ignored
        case 'c': {                    // GLOBAL
            std::string module = line(), name = line();
            push(global(module, name));
            return true;
        }
        case 0x93: {  // STACK_GLOBAL
            auto name = pop(), module = pop();
            push(global(module->text, name->text));
            return true;
        }
        case 'R': {  // REDUCE
            auto args = pop();
            auto fn = pop();
            push(call(fn, args));
            return true;
        }
        default: return false;
    }
}

ValuePtr Unpickler::make(Value::Kind kind) {
    auto v = std::make_shared<Value>();
    v->kind = kind;
    all_.push_back(v);
    return v;
}

unsigned char Unpickler::byte() {
    if (at_ < buffer_.size()) return static_cast<unsigned char>(buffer_[at_++]);
    return static_cast<unsigned char>(*take(1));
}

// The next n bytes, valid until the next read. The buffer grows to n at most,
// and n is checked against the file's size first, so a length the file cannot
// hold never allocates.
const char* Unpickler::take(std::uint64_t n) {
    if (n > buffer_.size() - at_) {
        std::uint64_t start = end();
        check(start <= source_.size() && n <= source_.size() - start,
              "load: '{}': pickle ends unexpectedly", source_.path());
        buffer_.erase(0, at_);
        base_ = start;
        at_ = 0;
        std::uint64_t want = std::min(std::max(n, kReadAhead), source_.size() - start);
        std::size_t have = buffer_.size();
        buffer_.resize(static_cast<std::size_t>(want));
        source_.read(start + have, buffer_.data() + have, buffer_.size() - have, "its pickle ends");
    }
    const char* at = buffer_.data() + at_;
    at_ += static_cast<std::size_t>(n);
    return at;
}

std::uint64_t Unpickler::le(std::size_t n) {
    std::uint64_t v = 0;
    const char* at = take(n);
    for (std::size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(at[i]);
    return v;
}

std::string Unpickler::line() {
    std::string out;
    for (char c; (c = static_cast<char>(byte())) != '\n';) out += c;
    return out;
}

void Unpickler::push_int(std::int64_t i) {
    auto v = make(Value::Kind::Int);
    v->integer = i;
    push(v);
}

void Unpickler::push_string(std::uint64_t n, Value::Kind kind) {
    auto v = make(kind);
    v->text.assign(take(n), n);
    push(v);
}

ValuePtr Unpickler::pop() {
    check(!stack_.empty(), "load: '{}': malformed pickle (stack underflow)", source_.path());
    auto v = stack_.back();
    stack_.pop_back();
    return v;
}

std::vector<ValuePtr> Unpickler::pop_mark() {
    std::vector<ValuePtr> values;
    while (true) {
        auto v = pop();
        if (v->kind == Value::Kind::Mark) break;
        values.push_back(v);
    }
    return {values.rbegin(), values.rend()};
}

ValuePtr Unpickler::target(Value::Kind kind, const char* op) {
    check(!stack_.empty() && stack_.back()->kind == kind,
          "load: '{}': malformed pickle ({} without a {})", source_.path(), op,
          kind == Value::Kind::List ? "list" : "dict");
    return stack_.back();
}

void Unpickler::memo(std::size_t index) {
    check(!stack_.empty(), "load: '{}': malformed pickle (PUT on an empty stack)", source_.path());
    memo_[index] = stack_.back();
}

ValuePtr Unpickler::recall(std::size_t index) {
    auto it = memo_.find(index);
    check(it != memo_.end(), "load: '{}': malformed pickle (bad memo {})", source_.path(), index);
    return it->second;
}

ValuePtr Unpickler::global(const std::string& module, const std::string& name) {
    std::string full = module + "." + name;
    static const std::vector<std::string> allowed = {"collections.OrderedDict",
                                                     "torch._utils._rebuild_tensor_v2",
                                                     "torch._utils._rebuild_parameter"};
    check(storage_type(full) || std::find(allowed.begin(), allowed.end(), full) != allowed.end(),
          "load: '{}': refusing pickle global '{}' (only tensors, dicts, lists, tuples, numbers "
          "and strings can be read)",
          source_.path(), full);
    auto v = make(Value::Kind::Global);
    v->text = full;
    return v;
}

// ('storage', storage_type, key, location, numel): the zip format; the legacy one
// adds view_metadata, None since PyTorch 0.4 (older storage views are not read).
ValuePtr Unpickler::persistent_load(const ValuePtr& pid) {
    const auto& items = pid->items;
    check(pid->kind == Value::Kind::Tuple &&
              (items.size() == 5 || (items.size() == 6 && items[5]->kind == Value::Kind::None)) &&
              items[0]->text == "storage" && items[1]->kind == Value::Kind::Global &&
              storage_type(items[1]->text) && items[2]->kind == Value::Kind::String &&
              items[4]->kind == Value::Kind::Int,
          "load: '{}': unexpected persistent id in pickle", source_.path());
    const StorageType& type = *storage_type(items[1]->text);
    auto storage = make(Value::Kind::Storage);
    storage->storage_type = type.name;
    storage->item_size = type.item_size;
    storage->supported = type.supported;
    storage->dtype = type.dtype;
    storage->text = items[2]->text;
    storage->integer = items[4]->integer;
    storages.push_back(storage);
    return storage;
}

ValuePtr Unpickler::call(const ValuePtr& fn, const ValuePtr& args) {
    check(fn->kind == Value::Kind::Global && args->kind == Value::Kind::Tuple,
          "load: '{}': malformed pickle (REDUCE on a non-callable)", source_.path());
    if (fn->text == "collections.OrderedDict") return make(Value::Kind::Dict);
    if (fn->text == "torch._utils._rebuild_parameter") {
        check(!args->items.empty(), "load: '{}': malformed _rebuild_parameter", source_.path());
        return args->items[0];
    }
    // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
    check(fn->text == "torch._utils._rebuild_tensor_v2" && args->items.size() >= 4 &&
              args->items[0]->kind == Value::Kind::Storage,
          "load: '{}': malformed _rebuild_tensor_v2 arguments", source_.path());
    auto t = make(Value::Kind::Tensor);
    t->items = args->items;  // checked and resolved once the storages are read
    return t;
}

}  // namespace xg
