// The state dict a torch.save pickle describes (torch_pickle.hpp), whichever
// file format holds it. The pickled object is a dict of tensors (a
// state_dict), or a checkpoint dict whose entry LoadOptions::key is one; every
// other leaf is refused, named. Tensors are views (storage, offset, size,
// stride) of storages: each storage is read once, straight into the tensor
// when a view is the whole storage, else into a temporary freed once its views
// are gathered. Views that are the same (tied weights) come back as one tensor;
// stride-0 (expanded) and overlapping views are copied in full. Every size,
// offset and stride is checked before a byte is allocated or copied.
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include "internal.hpp"
#include "torch_pickle.hpp"

namespace xg {

namespace {

// One tensor of the pickle: a view of a storage, and the tensor it becomes.
struct View {
    std::string key;  // the first entry that names it
    std::string storage;
    Dtype dtype = kFloat32;
    std::size_t item = 4;
    std::int64_t offset = 0;
    Shape shape;
    std::vector<std::int64_t> strides;
    std::uint64_t nbytes = 0;  // of the tensor it becomes
    Tensor tensor;

    using Id = std::tuple<std::string, std::int64_t, Shape, std::vector<std::int64_t>>;
    Id id() const { return {storage, offset, shape, strides}; }
    // The whole storage, in order: its bytes can be read straight into the tensor.
    bool whole(std::uint64_t storage_nbytes) const {
        std::int64_t expected = 1;
        for (std::size_t i = shape.size(); i-- > 0;) {
            if (shape[i] != 1 && strides[i] != expected) return false;
            expected *= static_cast<std::int64_t>(shape[i]);
        }
        return offset == 0 && nbytes == storage_nbytes;
    }
};

std::vector<std::uint64_t> ints(const std::string& path, const std::string& key, const Value& tuple,
                                bool sizes) {
    check(tuple.kind == Value::Kind::Tuple, "load: '{}': tensor '{}' has a malformed {}", path, key,
          sizes ? "size" : "stride");
    std::vector<std::uint64_t> out;
    for (const auto& v : tuple.items) {
        check(v->kind == Value::Kind::Int, "load: '{}': tensor '{}' has a malformed {}", path, key,
              sizes ? "size" : "stride");
        check(v->integer >= 0, "load: '{}': tensor '{}' has a negative {}", path, key,
              sizes ? "size" : "stride");
        out.push_back(static_cast<std::uint64_t>(v->integer));
    }
    return out;
}

// The view _rebuild_tensor_v2(storage, offset, size, stride, ...) describes,
// checked against its storage's `storage_nbytes`: every dimension and count fits
// int64, and the farthest element it touches lies inside the storage. Stride-0
// (expanded) and overlapping views are fine, as in PyTorch.
View parse_view(const std::string& path, const std::string& key, const Value& spec,
                std::uint64_t storage_nbytes) {
    const Value& storage = *spec.items[0];
    check(storage.supported,
          "load: '{}': tensor '{}' is a {} (expected float32, float64, float16, bfloat16, int64, "
          "int32, int16, int8, uint8 or bool tensors)",
          path, key, storage.storage_type);
    check(spec.items[1]->kind == Value::Kind::Int,
          "load: '{}': tensor '{}' has a malformed storage offset", path, key);
    View view;
    view.key = key;
    view.storage = storage.text;
    view.dtype = storage.dtype;
    view.item = storage.item_size;
    view.offset = spec.items[1]->integer;
    std::vector<std::uint64_t> sizes = ints(path, key, *spec.items[2], true);
    std::vector<std::uint64_t> strides = ints(path, key, *spec.items[3], false);
    check(strides.size() == sizes.size(), "load: '{}': tensor '{}' has mismatched size and stride",
          path, key);
    check(view.offset >= 0, "load: '{}': tensor '{}' has a negative storage offset", path, key);
    view.nbytes = checked_nbytes(path, key, sizes, view.item);
    view.shape.assign(sizes.begin(), sizes.end());
    view.strides.assign(strides.begin(), strides.end());
    check(storage_nbytes % view.item == 0, "load: '{}': storage of '{}' has a partial element",
          path, key);
    if (view.nbytes == 0) return view;  // touches nothing, as PyTorch's bounds check says
    std::int64_t last = view.offset;
    bool overflow = false;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        std::int64_t span = 0;
        overflow = overflow ||
                   __builtin_mul_overflow(static_cast<std::int64_t>(sizes[i]) - 1, view.strides[i],
                                          &span) ||
                   __builtin_add_overflow(last, span, &last);
    }
    check(!overflow, "load: '{}': tensor '{}' has a size or stride that overflows", path, key);
    std::uint64_t elements = storage_nbytes / view.item;
    check(static_cast<std::uint64_t>(last) < elements,
          "load: '{}': tensor '{}' reads past the end of its storage ({} elements)", path, key,
          elements);
    return view;
}

char* bytes_of(Tensor& t) {
    return std::visit([](auto& a) { return reinterpret_cast<char*>(a.data()); },
                      *t.impl()->storage);
}

// Copies view `v` of the storage bytes `raw` into `out`, row by row.
template <std::size_t Item>
void gather(const View& v, const char* raw, char* out) {
    if (v.nbytes == 0) return;
    if (v.shape.empty()) {
        std::memcpy(out, raw + static_cast<std::size_t>(v.offset) * Item, Item);
        return;
    }
    std::vector<std::size_t> stride(v.strides.begin(), v.strides.end());
    const std::size_t last = v.shape.back(), step = stride.back();
    const char* base = raw + static_cast<std::size_t>(v.offset) * Item;
    detail::for_each_row(v.shape, stride, [&](std::size_t start, std::size_t row) {
        const char* from = base + row * Item;
        char* to = out + start * Item;
        if (step == 1) {
            std::memcpy(to, from, last * Item);
        } else {
            for (std::size_t j = 0; j < last; ++j)
                std::memcpy(to + j * Item, from + j * step * Item, Item);
        }
    });
}

void gather_items(const View& v, const char* raw, char* out) {
    switch (v.item) {
        case 1: return gather<1>(v, raw, out);
        case 2: return gather<2>(v, raw, out);
        case 4: return gather<4>(v, raw, out);
        default: return gather<8>(v, raw, out);
    }
}

// A bool is one byte, 0 or 1; any other byte is not a bool (and reading it as
// one would be undefined), so the file is corrupt.
void check_bools(const std::string& path, const View& v) {
    if (v.dtype != kBool) return;
    const auto* raw = reinterpret_cast<const unsigned char*>(v.tensor.data<bool>().data());
    for (std::size_t i = 0, n = v.tensor.numel(); i < n; ++i) {
        check(raw[i] <= 1,
              "load: '{}': tensor '{}' of dtype bool has byte {} at element {} (expected 0 or 1)",
              path, v.key, raw[i], i);
    }
}

// Reads a storage once and makes its views' tensors: the storage goes straight
// into a view that is all of it, or else into a temporary freed once gathered.
void materialize(const std::string& path, const Record& record, const std::vector<View*>& views) {
    View* whole = nullptr;
    for (View* v : views) {
        if (v->whole(record.nbytes)) whole = v;
    }
    std::unique_ptr<char[]> temporary;
    const char* raw = nullptr;
    if (whole) {
        whole->tensor = empty(whole->shape, whole->dtype);
        record.read(bytes_of(whole->tensor));
        raw = bytes_of(whole->tensor);
    } else {
        temporary = std::make_unique_for_overwrite<char[]>(record.nbytes);
        record.read(temporary.get());
        raw = temporary.get();
    }
    for (View* v : views) {
        if (v != whole) {
            v->tensor = empty(v->shape, v->dtype);
            gather_items(*v, raw, bytes_of(v->tensor));
        }
        check_bools(path, *v);
    }
}

std::string key_text(const Value& key) {
    if (key.kind == Value::Kind::String) return key.text;
    if (key.kind == Value::Kind::Int) return std::to_string(key.integer);
    return kind_name(key);
}

// The dict of tensors to load: the pickled object, or its entry `options.key`.
const Value& chosen_dict(const std::string& path, const Value& top, const LoadOptions& options) {
    check(top.kind == Value::Kind::Dict,
          "load: '{}': expected the pickle to hold a dict of tensors (got {})", path,
          kind_name(top));
    if (options.key.empty()) return top;
    std::vector<std::string> keys;
    for (const auto& [key, value] : top.dict) {
        if (key->kind == Value::Kind::String && key->text == options.key) {
            check(value->kind == Value::Kind::Dict,
                  "load: '{}': expected entry '{}' to be a dict of tensors (got {})", path,
                  options.key, kind_name(*value));
            return *value;
        }
        keys.push_back(key_text(*key));
    }
    fail("load: '{}': expected an entry '{}' (got {})", path, options.key, fmt::join(keys, ", "));
}

// The chosen dict's entries, each a tensor with a string key, or an error
// naming the entry and what it is instead.
std::vector<std::pair<std::string, const Value*>> tensor_entries(const std::string& path,
                                                                 const Value& dict,
                                                                 const LoadOptions& options) {
    std::string in = options.key.empty() ? "" : " in '" + options.key + "'";
    std::vector<std::pair<std::string, const Value*>> out;
    for (const auto& [key, value] : dict.dict) {
        check(key->kind == Value::Kind::String, "load: '{}': expected string keys{} (got {})", path,
              in, kind_name(*key));
        if (value->kind == Value::Kind::Tensor) {
            out.emplace_back(key->text, value.get());
        } else if (options.key.empty() && value->kind == Value::Kind::Dict) {
            fail(
                "load: '{}': expected a tensor for entry '{}' (got a dict; pass .key = \"{}\" to "
                "load it)",
                path, key->text, key->text);
        } else {
            fail("load: '{}': expected a tensor for entry '{}'{} (got {})", path, key->text, in,
                 kind_name(*value));
        }
    }
    return out;
}

// A small file can describe far more tensor data than it holds: expanded
// (stride-0) views, or many views of one storage, each of which xgrad copies.
// A load may make at most 64 MiB plus 1032 times the file's size (deflate's
// largest expansion): room for an expanded mask, never a bomb.
std::uint64_t max_tensor_bytes(std::uint64_t file_size) {
    return (64ULL << 20) + 1032 * std::min<std::uint64_t>(file_size, 1ULL << 50);
}

}  // namespace

// The state dict the pickled object `top` holds, its storages read through `record_of`.
StateDict build_state_dict(const ByteSource& source, const Value& top, const LoadOptions& options,
                           const RecordOf& record_of) {
    const std::string& path = source.path();
    auto entries = tensor_entries(path, chosen_dict(path, top, options), options);
    std::map<std::string, Record> records;
    std::vector<std::string> storage_order;
    std::vector<View> views;
    std::map<View::Id, std::size_t> index;  // the same view twice (tied weights): one tensor
    std::map<std::string, std::vector<View*>> views_of;
    std::vector<std::size_t> view_of;
    views.reserve(entries.size());  // views_of points into it
    std::uint64_t total = 0, limit = max_tensor_bytes(source.size());
    for (const auto& [key, spec] : entries) {
        const Value& storage = *spec->items[0];
        auto record = records.find(storage.text);
        if (record == records.end()) {
            record = records.emplace(storage.text, record_of(storage)).first;
            record->second.storage_type = storage.storage_type;
            storage_order.push_back(storage.text);
        }
        check(record->second.storage_type == storage.storage_type,
              "load: '{}': storage '{}' is both a {} and a {}", path, storage.text,
              record->second.storage_type, storage.storage_type);
        View view = parse_view(path, key, *spec, record->second.nbytes);
        auto [at, added] = index.emplace(view.id(), views.size());
        if (added) {
            total += view.nbytes;  // no overflow: each is below 2^63, the sum below the limit
            if (total > limit) {
                fail(
                    "load: '{}': tensor '{}' of shape {} takes the tensors to {} bytes (expected "
                    "at most {}, 64 MiB plus 1032 times the file's size: every view is copied, "
                    "expanded ones in full)",
                    path, key, shape_str(view.shape), total, limit);
            }
            views.push_back(std::move(view));
            views_of[storage.text].push_back(&views.back());
        }
        view_of.push_back(at->second);
    }
    for (const std::string& storage : storage_order) {
        materialize(path, records.at(storage), views_of[storage]);
    }
    StateDict out;
    for (std::size_t i = 0; i < entries.size(); ++i)
        out.insert_or_assign(entries[i].first, views[view_of[i]].tensor);
    return out;
}

}  // namespace xg
