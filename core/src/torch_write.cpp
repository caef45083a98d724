// xg::save's torch.save format: the zip PyTorch >= 1.6 writes, byte for byte
// as PyTorch 1.13's torch.save writes the same tensors from a file object:
//   archive/data.pkl    a protocol-2 pickle of an OrderedDict of tensors
//   archive/data/<key>  each storage's raw little-endian bytes, keys in string
//                       order ("10" before "2"), as torch sorts them
//   archive/version     "3\n"
// (PyTorch 1.13 writes no archive/byteorder; later versions read a file
// without one as little-endian.) The pickle names only what
// torch.load(weights_only=True) accepts: collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 and the storage types. Tensors that share a
// storage (tied weights) name it once, so it is written once and comes back
// shared, in torch.load and in xg::load alike.
#include "torch_write.hpp"

#include <algorithm>
#include <bit>
#include <string>
#include <unordered_map>
#include <vector>

#include "atomic_file.hpp"
#include "internal.hpp"
#include "serialize_io.hpp"
#include "zip_writer.hpp"

namespace xg {

namespace {

// The storage class of each dtype, in Dtype's order.
constexpr const char* kStorageClasses[] = {
    "FloatStorage",    "DoubleStorage", "LongStorage",  "BoolStorage", "HalfStorage",
    "BFloat16Storage", "IntStorage",    "ShortStorage", "CharStorage", "ByteStorage"};
static_assert(std::size(kStorageClasses) == kNumDtypes);

// One storage to write: its key in the pickle and its bytes.
struct StorageRecord {
    std::string key;
    const void* data = nullptr;
    std::uint64_t nbytes = 0;
};

// Protocol-2 opcodes, written as CPython's C pickler writes them: what it
// would memoize gets the next memo index (BINPUT), and what refers again to an
// object it memoized is a BINGET. torch.save pickles the same objects (the
// constants 'storage' and 'cpu', a storage's key string, a tensor saved twice),
// so the bytes come out as its own.
class Pickler {
public:
    std::string out;

    void op(unsigned char code) { out += static_cast<char>(code); }

    // Memoizes the object just written, under `tag` if it is referred to again.
    void put(const std::string& tag = {}) {
        const std::size_t index = next_++;
        if (!tag.empty()) memo_[tag] = index;
        memo_op('q', 'r', index);  // BINPUT, LONG_BINPUT
    }

    // Refers to the object memoized under `tag`; false when there is none.
    bool get(const std::string& tag) {
        auto it = memo_.find(tag);
        if (it == memo_.end()) return false;
        memo_op('h', 'j', it->second);  // BINGET, LONG_BINGET
        return true;
    }

    void string(const std::string& text, const std::string& tag = {}) {
        if (!tag.empty() && get(tag)) return;
        op('X');  // BINUNICODE: 4-byte length, UTF-8
        le32(text.size());
        out += text;
        put(tag);
    }

    void global(const std::string& module, const std::string& name) {
        const std::string tag = "global " + module + " " + name;
        if (get(tag)) return;
        out += "c" + module + "\n" + name + "\n";
        put(tag);
    }

    // An int as save_long writes one: BININT1, BININT2 or BININT while it fits
    // a signed 32-bit int, else LONG1 with the fewest bytes that keep it positive.
    void integer(std::uint64_t value) {
        if (value <= 0x7FFFFFFF) {
            const int bytes = value <= 0xFF ? 1 : value <= 0xFFFF ? 2 : 4;
            op(bytes == 1 ? 'K' : bytes == 2 ? 'M' : 'J');
            for (int i = 0; i < bytes; ++i) op(static_cast<unsigned char>(value >> (8 * i)));
            return;
        }
        const int bytes = (std::bit_width(value) >> 3) + 1;
        op(0x8a);
        op(static_cast<unsigned char>(bytes));
        for (int i = 0; i < bytes; ++i)
            op(i < 8 ? static_cast<unsigned char>(value >> (8 * i)) : 0);
    }

    // A tuple of ints: EMPTY_TUPLE (never memoized), TUPLE1 to TUPLE3, or MARK ... TUPLE.
    void int_tuple(const std::vector<std::uint64_t>& values) {
        if (values.empty()) return op(')');
        if (values.size() > 3) op('(');
        for (std::uint64_t v : values) integer(v);
        op(values.size() > 3 ? 't' : static_cast<unsigned char>(0x84 + values.size()));
        put();
    }

private:
    // A one-byte index when it fits, else the long form's four bytes.
    void memo_op(unsigned char short_op, unsigned char long_op, std::size_t index) {
        if (index < 256) {
            op(short_op);
            op(static_cast<unsigned char>(index));
        } else {
            op(long_op);
            le32(index);
        }
    }

    void le32(std::size_t value) {
        for (int i = 0; i < 4; ++i) op(static_cast<unsigned char>(value >> (8 * i)));
    }

    std::size_t next_ = 0;
    std::unordered_map<std::string, std::size_t> memo_;
};

// A contiguous tensor's strides, as PyTorch computes them: a dim of size 0
// counts as 1, so [0, 2] has strides [2, 1] and [2, 0] has [1, 1].
std::vector<std::uint64_t> contiguous_strides(const Shape& shape) {
    std::vector<std::uint64_t> strides(shape.size());
    std::uint64_t step = 1;
    for (std::size_t i = shape.size(); i-- > 0;) {
        strides[i] = step;
        step *= std::max<std::uint64_t>(shape[i], 1);
    }
    return strides;
}

// collections.OrderedDict(): the state dict, and every tensor's backward_hooks.
void ordered_dict(Pickler& p) {
    p.global("collections", "OrderedDict");
    p.op(')');
    p.op('R');  // REDUCE
    p.put();
}

// _rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()), the
// storage a persistent id ('storage', <type>, key, 'cpu', numel). A tensor
// pickled before (the same Tensor twice) is referred to, as Python's memo does.
void pickle_tensor(Pickler& p, const Tensor& t, const StorageRecord& record) {
    const std::string tag = fmt::format("tensor {}", static_cast<const void*>(t.impl()));
    if (p.get(tag)) return;
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');
    p.string("storage", "'storage'");
    p.global("torch", kStorageClasses[static_cast<int>(t.dtype())]);
    p.string(record.key, "key " + record.key);
    p.string("cpu", "'cpu'");
    p.integer(t.numel());
    p.op('t');
    p.put();
    p.op('Q');  // BINPERSID
    p.integer(0);
    const Shape shape = t.shape();
    p.int_tuple(std::vector<std::uint64_t>(shape.begin(), shape.end()));
    p.int_tuple(contiguous_strides(shape));
    p.op(0x89);  // NEWFALSE: requires_grad, as state_dict() detaches
    ordered_dict(p);
    p.op('t');
    p.put();
    p.op('R');
    p.put(tag);
}

// The pickle of `state_dict`, and in `records` each storage it names, in the
// order named: the key of a storage is its place in that order.
std::string pickle_state_dict(const StateDict& state_dict, std::vector<StorageRecord>& records) {
    constexpr std::size_t kBatch = 1000;                     // the pickler's SETITEMS batch size
    std::unordered_map<const void*, std::size_t> record_of;  // by storage
    std::vector<const StateDict::Entry*> entries;
    for (const auto& entry : state_dict) {
        check(entry.second.defined(), "save: tensor '{}' is undefined", entry.first);
        entries.push_back(&entry);
    }
    Pickler p;
    p.op(0x80);  // PROTO 2
    p.op(2);
    ordered_dict(p);
    for (std::size_t start = 0; start < entries.size(); start += kBatch) {
        const std::size_t n = std::min(kBatch, entries.size() - start);
        if (n > 1) p.op('(');
        for (std::size_t i = start; i < start + n; ++i) {
            const auto& [key, t] = *entries[i];
            auto [at, added] = record_of.emplace(t.impl()->storage.get(), records.size());
            if (added) {
                StorageRecord record{std::to_string(records.size())};
                detail::visit_storage(t, [&](const auto& values) {
                    record.data = values.data();
                    record.nbytes = values.size() * sizeof(*values.data());
                });
                records.push_back(std::move(record));
            }
            p.string(key);
            pickle_tensor(p, t, records[at->second]);
        }
        p.op(n > 1 ? 'u' : 's');  // SETITEMS or SETITEM
    }
    p.op('.');  // STOP
    return std::move(p.out);
}

}  // namespace

namespace detail {

void save_torch(const StateDict& state_dict, const std::string& path, std::uint64_t zip64_from) {
    std::vector<StorageRecord> records;
    const std::string pickle = pickle_state_dict(state_dict, records);
    std::vector<const StorageRecord*> order;
    for (const StorageRecord& r : records) order.push_back(&r);
    std::sort(order.begin(), order.end(),
              [](const StorageRecord* a, const StorageRecord* b) { return a->key < b->key; });
    const std::string root = "archive/";
    write_atomically(path, "save", [&](std::FILE* file) {
        ZipWriter zip(file, zip64_from);
        bool ok = zip.add(root + "data.pkl", pickle.data(), pickle.size());
        for (const StorageRecord* r : order)
            ok = ok && zip.add(root + "data/" + r->key, r->data, r->nbytes);
        return ok && zip.add(root + "version", "3\n", 2) && zip.finish();
    });
}

}  // namespace detail

void save_torch(const StateDict& state_dict, const std::string& path) {
    detail::save_torch(state_dict, path, detail::ZipWriter::kZip64Limit);
}

}  // namespace xg
