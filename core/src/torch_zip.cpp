// Reading torch.save(model.state_dict(), path) files: a zip holding
// "<name>/data.pkl" (a pickle) and "<name>/data/<key>" (raw storages).
//
// The unpickler is deliberately tiny and safe: it knows the handful of opcodes
// a state_dict pickle uses, builds plain values, and refuses every global
// other than the few a state_dict of float32/float64/int64 tensors needs.
// Nothing in the file is ever executed.
#include <cstring>
#include <memory>
#include <unordered_map>

#include <zip.h>

#include "internal.hpp"
#include "xgrad/serialize.hpp"

namespace xg {

namespace {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

// A pickled Python value, reduced to what a state_dict can contain.
struct Value {
    enum class Kind {
        None,
        Bool,
        Int,
        Float,
        String,
        Tuple,
        List,
        Dict,
        Global,
        Storage,
        Tensor,
        Mark
    };
    Kind kind = Kind::None;
    std::int64_t integer = 0;
    double real = 0;
    std::string text;                                 // String; Global "module.name"; Storage key
    std::vector<ValuePtr> items;                      // Tuple, List
    std::vector<std::pair<ValuePtr, ValuePtr>> dict;  // Dict (ordered)
    Dtype dtype = kFloat32;                           // Storage
    Tensor tensor;                                    // Tensor
};

struct Zip {
    zip_t* archive = nullptr;
    ~Zip() {
        if (archive) zip_discard(archive);
    }
};

std::vector<char> read_entry(zip_t* archive, std::size_t archive_size, zip_int64_t index,
                             const std::string& path, const std::string& name) {
    zip_stat_t stat;
    check(zip_stat_index(archive, static_cast<zip_uint64_t>(index), 0, &stat) == 0 &&
              (stat.valid & ZIP_STAT_SIZE) && (stat.valid & ZIP_STAT_COMP_SIZE),
          "load: '{}': cannot stat zip entry '{}'", path, name);
    // Deflate expands at most 1032-fold: a larger claimed size is a lie (or a zip
    // bomb), and believing it would allocate whatever the file asks for.
    check(stat.size <= 1032 * std::min<zip_uint64_t>(stat.comp_size, archive_size) + 1024,
          "load: '{}': zip entry '{}' claims {} bytes from {} compressed ones", path, name,
          stat.size, stat.comp_size);
    std::unique_ptr<zip_file_t, int (*)(zip_file_t*)> file(
        zip_fopen_index(archive, static_cast<zip_uint64_t>(index), 0), zip_fclose);
    check(file != nullptr, "load: '{}': cannot open zip entry '{}'", path, name);
    std::vector<char> out(stat.size);
    zip_int64_t got = out.empty() ? 0 : zip_fread(file.get(), out.data(), out.size());
    check(got == static_cast<zip_int64_t>(out.size()), "load: '{}': zip entry '{}' is truncated",
          path, name);
    return out;
}

class Unpickler {
public:
    Unpickler(const std::vector<char>& bytes, std::string path)
        : bytes_(bytes), path_(std::move(path)) {}
    // A hostile pickle can build cycles (a list appended to itself) or nest values
    // thousands deep; cutting every link here frees them all, without recursion.
    ~Unpickler() {
        for (auto& v : all_) {
            v->items.clear();
            v->dict.clear();
        }
    }
    Unpickler(const Unpickler&) = delete;
    Unpickler& operator=(const Unpickler&) = delete;

    ValuePtr run() {
        while (true) {
            unsigned char op = byte();
            switch (op) {
                case 0x80: byte(); break;                        // PROTO
                case 0x95: take(8); break;                       // FRAME
                case '(': push(make(Value::Kind::Mark)); break;  // MARK
                case '.': return pop();                          // STOP
                case 'N': push(make(Value::Kind::None)); break;
                case 0x88:
                case 0x89: {  // NEWTRUE / NEWFALSE
                    auto v = make(Value::Kind::Bool);
                    v->integer = op == 0x88;
                    push(v);
                    break;
                }
                case 'J': push_int(static_cast<std::int32_t>(le(4))); break;
                case 'K': push_int(static_cast<std::int64_t>(le(1))); break;
                case 'M': push_int(static_cast<std::int64_t>(le(2))); break;
                case 0x8a: {  // LONG1
                    std::size_t n = byte();
                    check(n <= 8, "load: '{}': integer too large in pickle", path_);
                    std::uint64_t raw = le(n);
                    if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1)
                        raw |= ~0ULL << (8 * n);  // sign
                    push_int(static_cast<std::int64_t>(raw));
                    break;
                }
                case 'G': {  // BINFLOAT (big-endian)
                    std::uint64_t raw = 0;
                    for (int i = 0; i < 8; ++i) raw = (raw << 8) | byte();
                    auto v = make(Value::Kind::Float);
                    std::memcpy(&v->real, &raw, 8);
                    push(v);
                    break;
                }
                case 'X': push_string(le(4)); break;    // BINUNICODE
                case 0x8c: push_string(byte()); break;  // SHORT_BINUNICODE
                case 'T': push_string(le(4)); break;    // BINSTRING
                case 'U': push_string(byte()); break;   // SHORT_BINSTRING
                case ')': push(make(Value::Kind::Tuple)); break;
                case ']': push(make(Value::Kind::List)); break;
                case '}': push(make(Value::Kind::Dict)); break;
                case 't': {
                    auto t = make(Value::Kind::Tuple);
                    t->items = pop_mark();
                    push(t);
                    break;
                }
                case 0x85:
                case 0x86:
                case 0x87: {  // TUPLE1..3
                    auto t = make(Value::Kind::Tuple);
                    t->items.resize(op - 0x84);
                    for (auto it = t->items.rbegin(); it != t->items.rend(); ++it) *it = pop();
                    push(t);
                    break;
                }
                case 'q': memo(byte()); break;          // BINPUT
                case 'r': memo(le(4)); break;           // LONG_BINPUT
                case 0x94: memo(memo_.size()); break;   // MEMOIZE
                case 'h': push(recall(byte())); break;  // BINGET
                case 'j': push(recall(le(4))); break;   // LONG_BINGET
                case 'c': {                             // GLOBAL
                    std::string module = line(), name = line();
                    push(global(module, name));
                    break;
                }
                case 0x93: {  // STACK_GLOBAL
                    auto name = pop(), module = pop();
                    push(global(module->text, name->text));
                    break;
                }
                case 'Q': push(persistent_load(pop())); break;  // BINPERSID
                case 'R': {
                    auto args = pop();
                    auto fn = pop();
                    push(call(fn, args));
                    break;
                }
                case 'a': {
                    auto v = pop();
                    list_target()->items.push_back(v);
                    break;
                }
                case 'e': {
                    auto values = pop_mark();
                    auto l = list_target();
                    l->items.insert(l->items.end(), values.begin(), values.end());
                    break;
                }
                case 's': {
                    auto v = pop();
                    auto k = pop();
                    dict_target()->dict.emplace_back(k, v);
                    break;
                }
                case 'u': {
                    auto values = pop_mark();
                    check(values.size() % 2 == 0, "load: '{}': odd SETITEMS in pickle", path_);
                    auto d = dict_target();
                    for (std::size_t i = 0; i < values.size(); i += 2)
                        d->dict.emplace_back(values[i], values[i + 1]);
                    break;
                }
                case 'b': pop(); break;  // BUILD: state_dict._metadata (version info), ignored
                default:
                    throw Error(
                        fmt::format("load: '{}': unsupported pickle opcode 0x{:02x} at byte {}",
                                    path_, op, pos_ - 1));
            }
        }
    }

    // Storages named by persistent ids; filled in by the caller.
    std::vector<ValuePtr> storages;

private:
    ValuePtr make(Value::Kind kind) {
        auto v = std::make_shared<Value>();
        v->kind = kind;
        all_.push_back(v);
        return v;
    }
    unsigned char byte() {
        check(pos_ < bytes_.size(), "load: '{}': pickle ends unexpectedly", path_);
        return static_cast<unsigned char>(bytes_[pos_++]);
    }
    const char* take(std::size_t n) {
        check(n <= bytes_.size() - pos_, "load: '{}': pickle ends unexpectedly", path_);
        const char* at = bytes_.data() + pos_;
        pos_ += n;
        return at;
    }
    std::uint64_t le(std::size_t n) {
        std::uint64_t v = 0;
        const char* at = take(n);
        for (std::size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(at[i]);
        return v;
    }
    std::string line() {
        std::string out;
        for (char c; (c = static_cast<char>(byte())) != '\n';) out += c;
        return out;
    }
    void push(ValuePtr v) { stack_.push_back(std::move(v)); }
    void push_int(std::int64_t i) {
        auto v = make(Value::Kind::Int);
        v->integer = i;
        push(v);
    }
    void push_string(std::uint64_t n) {
        auto v = make(Value::Kind::String);
        v->text.assign(take(n), n);
        push(v);
    }
    ValuePtr pop() {
        check(!stack_.empty(), "load: '{}': malformed pickle (stack underflow)", path_);
        auto v = stack_.back();
        stack_.pop_back();
        return v;
    }
    std::vector<ValuePtr> pop_mark() {
        std::vector<ValuePtr> values;
        while (true) {
            auto v = pop();
            if (v->kind == Value::Kind::Mark) break;
            values.push_back(v);
        }
        return {values.rbegin(), values.rend()};
    }
    ValuePtr list_target() {
        check(!stack_.empty() && stack_.back()->kind == Value::Kind::List,
              "load: '{}': malformed pickle (APPEND without a list)", path_);
        return stack_.back();
    }
    ValuePtr dict_target() {
        check(!stack_.empty() && stack_.back()->kind == Value::Kind::Dict,
              "load: '{}': malformed pickle (SETITEM without a dict)", path_);
        return stack_.back();
    }
    void memo(std::size_t index) {
        check(!stack_.empty(), "load: '{}': malformed pickle (PUT on an empty stack)", path_);
        memo_[index] = stack_.back();
    }
    ValuePtr recall(std::size_t index) {
        auto it = memo_.find(index);
        check(it != memo_.end(), "load: '{}': malformed pickle (bad memo {})", path_, index);
        return it->second;
    }

    ValuePtr global(const std::string& module, const std::string& name) {
        std::string full = module + "." + name;
        static const std::vector<std::string> allowed = {"collections.OrderedDict",
                                                         "torch._utils._rebuild_tensor_v2",
                                                         "torch._utils._rebuild_parameter",
                                                         "torch.FloatStorage",
                                                         "torch.DoubleStorage",
                                                         "torch.LongStorage"};
        check(std::find(allowed.begin(), allowed.end(), full) != allowed.end(),
              "load: '{}': refusing pickle global '{}' (only state_dicts of float32, float64 and "
              "int64 tensors can be read)",
              path_, full);
        auto v = make(Value::Kind::Global);
        v->text = full;
        return v;
    }

    // ('storage', torch.FloatStorage, key, location, numel)
    ValuePtr persistent_load(const ValuePtr& pid) {
        check(pid->kind == Value::Kind::Tuple && pid->items.size() == 5 &&
                  pid->items[0]->text == "storage" && pid->items[1]->kind == Value::Kind::Global,
              "load: '{}': unexpected persistent id in pickle", path_);
        auto storage = make(Value::Kind::Storage);
        const std::string& type = pid->items[1]->text;
        storage->dtype = type == "torch.FloatStorage"    ? kFloat32
                         : type == "torch.DoubleStorage" ? kFloat64
                                                         : kInt64;
        storage->text = pid->items[2]->text;
        storage->integer = pid->items[4]->integer;
        storages.push_back(storage);
        return storage;
    }

    ValuePtr call(const ValuePtr& fn, const ValuePtr& args) {
        check(fn->kind == Value::Kind::Global && args->kind == Value::Kind::Tuple,
              "load: '{}': malformed pickle (REDUCE on a non-callable)", path_);
        if (fn->text == "collections.OrderedDict") return make(Value::Kind::Dict);
        if (fn->text == "torch._utils._rebuild_parameter") {
            check(!args->items.empty(), "load: '{}': malformed _rebuild_parameter", path_);
            return args->items[0];
        }
        // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
        check(args->items.size() >= 4 && args->items[0]->kind == Value::Kind::Storage,
              "load: '{}': malformed _rebuild_tensor_v2 arguments", path_);
        auto t = make(Value::Kind::Tensor);
        t->items = args->items;  // resolved once the storages are read
        return t;
    }

    const std::vector<char>& bytes_;
    std::string path_;
    std::size_t pos_ = 0;
    std::vector<ValuePtr> stack_;
    std::unordered_map<std::size_t, ValuePtr> memo_;  // sparse: indices come from the file
    std::vector<ValuePtr> all_;                       // every value made, for the destructor
};

// Gathers a (possibly strided) view of a raw storage into a fresh tensor.
Tensor rebuild(const std::string& path, const std::string& key, const Value& spec,
               const std::vector<char>& raw) {
    const Value& storage = *spec.items[0];
    std::size_t item = storage.dtype == kFloat32 ? 4 : 8;
    check(raw.size() % item == 0, "load: '{}': storage of '{}' has a partial element", path, key);
    auto elements = static_cast<std::int64_t>(raw.size() / item);
    std::int64_t offset = spec.items[1]->integer;
    Shape shape;
    std::vector<std::int64_t> strides;
    for (const auto& d : spec.items[2]->items) {
        check(d->integer >= 0, "load: '{}': tensor '{}' has a negative size", path, key);
        shape.push_back(static_cast<std::size_t>(d->integer));
    }
    for (const auto& s : spec.items[3]->items) strides.push_back(s->integer);
    check(strides.size() == shape.size(), "load: '{}': tensor '{}' has mismatched size and stride",
          path, key);
    // Bounds, in overflow-checked arithmetic, before anything is allocated: the
    // farthest element the view touches must lie inside the storage, and the view
    // may not hold more elements than the storage (PyTorch never writes negative
    // strides; expanded stride-0 views, which could, are not supported).
    check(offset >= 0, "load: '{}': tensor '{}' has a negative storage offset", path, key);
    std::int64_t last = offset, numel = 1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        check(strides[i] >= 0, "load: '{}': tensor '{}' has a negative stride", path, key);
        auto size = static_cast<std::int64_t>(shape[i]);
        std::int64_t span = 0;
        bool overflow = __builtin_mul_overflow(size, numel, &numel);
        if (size > 0) {
            overflow = overflow || __builtin_mul_overflow(size - 1, strides[i], &span) ||
                       __builtin_add_overflow(last, span, &last);
        }
        check(!overflow, "load: '{}': tensor '{}' has a size or stride that overflows", path, key);
    }
    check(numel == 0 || (last < elements && numel <= elements),
          "load: '{}': tensor '{}' reads past the end of its storage ({} elements)", path, key,
          elements);
    Tensor t = empty(shape, storage.dtype);
    std::visit(
        [&](auto& a) {
            using T = typename std::decay_t<decltype(a)>::value_type;
            const T* src = reinterpret_cast<const T*>(raw.data());
            std::vector<std::size_t> index(shape.size(), 0);
            for (std::size_t n = 0; n < a.size(); ++n) {
                std::int64_t at = offset;
                for (std::size_t i = 0; i < shape.size(); ++i)
                    at += static_cast<std::int64_t>(index[i]) * strides[i];
                std::memcpy(a.data() + n, src + at, sizeof(T));
                for (std::size_t i = shape.size(); i-- > 0;) {
                    if (++index[i] < shape[i]) break;
                    index[i] = 0;
                }
            }
        },
        *t.impl()->storage);
    return t;
}

}  // namespace

StateDict load_torch_zip(const std::string& path, const std::vector<char>& bytes) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
    check(source != nullptr, "load: '{}': cannot read as zip", path);
    Zip zip;
    zip.archive = zip_open_from_source(source, ZIP_RDONLY, &error);
    if (zip.archive == nullptr) {
        zip_source_free(source);
        std::string reason = zip_error_strerror(&error);
        zip_error_fini(&error);  // zip_error_strerror allocated the text it returned
        throw Error(fmt::format("load: '{}': not a valid zip file ({})", path, reason));
    }
    // The top folder is "archive" in recent PyTorch, the file's stem in older ones.
    std::string root;
    zip_int64_t entries = zip_get_num_entries(zip.archive, 0);
    zip_int64_t pickle_index = -1;
    for (zip_int64_t i = 0; i < entries; ++i) {
        const char* entry_name = zip_get_name(zip.archive, static_cast<zip_uint64_t>(i), 0);
        if (entry_name == nullptr) continue;
        std::string name = entry_name;
        auto slash = name.find('/');
        if (slash != std::string::npos && name.substr(slash) == "/data.pkl") {
            root = name.substr(0, slash);
            pickle_index = i;
        }
    }
    check(pickle_index >= 0, "load: '{}': zip has no data.pkl (not a torch.save file)", path);
    std::vector<char> pickle =
        read_entry(zip.archive, bytes.size(), pickle_index, path, root + "/data.pkl");
    Unpickler unpickler(pickle, path);
    ValuePtr result = unpickler.run();
    check(result->kind == Value::Kind::Dict,
          "load: '{}': expected the pickle to hold a state_dict (an OrderedDict)", path);

    std::map<std::string, std::vector<char>> storages;
    for (const auto& storage : unpickler.storages) {
        if (storages.count(storage->text)) continue;
        std::string name = root + "/data/" + storage->text;
        zip_int64_t index = zip_name_locate(zip.archive, name.c_str(), 0);
        check(index >= 0, "load: '{}': missing storage '{}'", path, name);
        storages[storage->text] = read_entry(zip.archive, bytes.size(), index, path, name);
    }
    StateDict out;
    for (const auto& [key, value] : result->dict) {
        check(key->kind == Value::Kind::String, "load: '{}': state_dict has a non-string key",
              path);
        check(value->kind == Value::Kind::Tensor, "load: '{}': entry '{}' is not a tensor", path,
              key->text);
        out.insert_or_assign(key->text,
                             rebuild(path, key->text, *value, storages.at(value->items[0]->text)));
    }
    return out;
}

}  // namespace xg
