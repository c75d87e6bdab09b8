#include "io/unpickler.h"

#include <deque>
#include <unordered_map>
#include <vector>

#include "io/io_util.h"

namespace lmf::io::detail {

namespace {

// Bounds that keep hostile input from exhausting memory (a real data.pkl is far below them).
constexpr size_t kMaxObjects = size_t{1} << 22;
constexpr size_t kMaxMemo = size_t{1} << 22;
constexpr size_t kMaxMarks = size_t{1} << 16;
constexpr size_t kMaxRank = 64;

enum class Kind : uint8_t { none, boolean, integer, floating, string, tuple, list, dict, global,
                            storage, tensor };
enum class Callable : uint8_t { ordered_dict, rebuild_tensor, rebuild_parameter,
                                rebuild_parameter_with_state, storage_type };

// One unpickled value. Values live in an arena and refer to each other by pointer, so shared and
// even cyclic references (legal in pickles) cost nothing and nothing is freed recursively.
struct Obj {
  Kind kind = Kind::none;
  int64_t i = 0;  // integer/boolean value; storage: index into the storage table
  double f = 0;
  std::string s;  // string; global: "module.name"
  Callable callable = Callable::ordered_dict;
  StoredType stype = StoredType::f32;  // storage-type globals
  std::vector<Obj*> items;                     // tuple, list
  std::vector<std::pair<Obj*, Obj*>> pairs;    // dict
  Tensor tensor;
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::none: return "None";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::tuple: return "tuple";
    case Kind::list: return "list";
    case Kind::dict: return "dict";
    case Kind::global: return "global";
    case Kind::storage: return "storage";
    case Kind::tensor: return "tensor";
  }
  return "?";
}

struct StorageRec {
  std::string key;
  StoredType type;
  int64_t numel;
  Tensor flat;  // loaded on first use
};

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const StorageResolver& resolve,
            const std::string& what, std::optional<DType> convert_to)
      : begin_(data), p_(data), end_(data + size), resolve_(resolve), what_(what),
        convert_to_(convert_to) {}

  StateDict run() {
    Obj* result = nullptr;
    while (!result) result = step();
    if (result->kind != Kind::dict)
      fail<IoError>("{}: the pickle holds a {}, not a state dict; save model.state_dict()", what_,
                    kind_name(result->kind));
    StateDict out;
    for (const auto& [k, v] : result->pairs) {
      if (k->kind != Kind::string)
        fail<IoError>("{}: state dict key of type {} (keys must be strings)", what_,
                      kind_name(k->kind));
      if (v->kind != Kind::tensor)
        fail<IoError>("{}: state dict entry '{}' is a {}, not a tensor; lmforge loads flat state "
                      "dicts (torch.save(model.state_dict(), ...))",
                      what_, printable(k->s), kind_name(v->kind));
      out[k->s] = v->tensor;
    }
    return out;
  }

 private:
  const uint8_t *begin_, *p_, *end_;
  const StorageResolver& resolve_;
  const std::string& what_;
  std::optional<DType> convert_to_;
  std::deque<Obj> arena_;
  std::vector<Obj*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Obj*> memo_;
  std::vector<StorageRec> storages_;
  std::unordered_map<std::string, size_t> storage_by_key_;
  size_t op_pos_ = 0;

  template <class... Args>
  [[noreturn]] void bad(fmt::format_string<Args...> f, Args&&... args) {
    fail<IoError>("{}: malformed pickle at byte {}: {}", what_, op_pos_,
                  fmt::format(f, std::forward<Args>(args)...));
  }
  [[noreturn]] void refuse(const std::string& thing) {
    fail<IoError>("{}: refusing to unpickle {}: pytorch_model.bin may only contain tensors; "
                  "convert it with safetensors",
                  what_, thing);
  }

  const uint8_t* take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) bad("truncated (needs {} more bytes)", n);
    const uint8_t* q = p_;
    p_ += n;
    return q;
  }
  Obj* make(Kind k) {
    if (arena_.size() >= kMaxObjects) bad("more than {} objects", kMaxObjects);
    arena_.emplace_back();
    arena_.back().kind = k;
    return &arena_.back();
  }
  Obj* make_int(int64_t v, Kind k = Kind::integer) {
    Obj* o = make(k);
    o->i = v;
    return o;
  }
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Obj* o) { stack_.push_back(o); }
  Obj* pop() {
    if (stack_.size() <= fence()) bad("stack underflow");
    Obj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj* top() {
    if (stack_.size() <= fence()) bad("stack underflow");
    return stack_.back();
  }
  std::vector<Obj*> pop_mark() {
    if (marks_.empty()) bad("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Obj* tuple(std::vector<Obj*> items) {
    Obj* o = make(Kind::tuple);
    o->items = std::move(items);
    return o;
  }
  Obj* string(size_t n) {
    const uint8_t* q = take(n);
    Obj* o = make(Kind::string);
    o->s.assign(reinterpret_cast<const char*>(q), n);
    return o;
  }
  void memo_put(uint64_t idx) {
    if (memo_.size() >= kMaxMemo && !memo_.count(idx)) bad("more than {} memo entries", kMaxMemo);
    memo_[idx] = top();
  }
  Obj* memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("memo entry {} was never stored", idx);
    return it->second;
  }
  std::string line() {
    const uint8_t* start = p_;
    while (p_ < end_ && *p_ != '\n') {
      if (p_ - start > 256) bad("GLOBAL name longer than 256 bytes");
      ++p_;
    }
    if (p_ == end_) bad("truncated GLOBAL");
    std::string s(reinterpret_cast<const char*>(start), static_cast<size_t>(p_ - start));
    ++p_;
    return s;
  }

  Obj* global(const std::string& module, const std::string& name) {
    static const std::pair<const char*, StoredType> storages[] = {
        {"FloatStorage", StoredType::f32},   {"HalfStorage", StoredType::f16},
        {"BFloat16Storage", StoredType::bf16}, {"DoubleStorage", StoredType::f64},
        {"LongStorage", StoredType::i64},    {"IntStorage", StoredType::i32},
        {"ShortStorage", StoredType::i16},   {"CharStorage", StoredType::i8},
        {"ByteStorage", StoredType::u8},     {"BoolStorage", StoredType::boolean}};
    Obj* o = make(Kind::global);
    o->s = module + "." + name;
    if (module == "collections" && name == "OrderedDict") {
      o->callable = Callable::ordered_dict;
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      o->callable = Callable::rebuild_tensor;
    } else if (module == "torch._utils" && name == "_rebuild_parameter") {
      o->callable = Callable::rebuild_parameter;
    } else if (module == "torch._utils" && name == "_rebuild_parameter_with_state") {
      o->callable = Callable::rebuild_parameter_with_state;
    } else {
      bool found = false;
      if (module == "torch")
        for (const auto& [n, t] : storages)
          if (name == n) {
            o->callable = Callable::storage_type;
            o->stype = t;
            found = true;
          }
      if (!found) refuse(printable(module, 100) + "." + printable(name, 100));
    }
    return o;
  }

  int64_t as_int(Obj* o, const char* what) {
    if (o->kind != Kind::integer) bad("{} must be an int, got {}", what, kind_name(o->kind));
    return o->i;
  }

  Obj* persistent_load(Obj* pid) {
    if (pid->kind != Kind::tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::string ||
        pid->items[0]->s != "storage")
      bad("persistent id must be ('storage', type, key, location, numel)");
    Obj* type = pid->items[1];
    if (type->kind != Kind::global || type->callable != Callable::storage_type)
      bad("persistent id names no torch storage type");
    Obj* key = pid->items[2];
    if (key->kind != Kind::string) bad("storage key must be a string");
    const int64_t numel = as_int(pid->items[4], "storage numel");
    if (numel < 0) bad("negative storage numel {}", numel);
    auto [it, added] = storage_by_key_.emplace(key->s, storages_.size());
    if (added) {
      storages_.push_back({key->s, type->stype, numel, Tensor()});
    } else {
      const StorageRec& r = storages_[it->second];
      if (r.type != type->stype || r.numel != numel)
        bad("storage '{}' is referenced with two different types or sizes", printable(key->s));
    }
    Obj* o = make(Kind::storage);
    o->i = static_cast<int64_t>(it->second);
    return o;
  }

  const Tensor& storage_tensor(size_t idx) {
    StorageRec& r = storages_[idx];
    if (r.flat.defined()) return r.flat;
    const std::string what = fmt::format("{}: storage '{}'", what_, printable(r.key));
    StorageBytes b = resolve_(r.key);
    uint64_t need = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(r.numel), stored_size(r.type), &need) ||
        need > b.nbytes)
      fail<IoError>("{} holds {} {} elements but its data entry has only {} bytes", what, r.numel,
                    stored_name(r.type), b.nbytes);
    r.flat = load_flat(b.storage, b.byte_offset, r.numel, r.type, convert_to_, what);
    return r.flat;
  }

  Obj* rebuild_tensor(const std::vector<Obj*>& a) {
    if (a.size() != 6 && a.size() != 7)
      bad("_rebuild_tensor_v2 takes 6 or 7 arguments, got {}", a.size());
    if (a[0]->kind != Kind::storage) bad("_rebuild_tensor_v2: first argument is not a storage");
    const int64_t offset = as_int(a[1], "storage offset");
    if (a[2]->kind != Kind::tuple || a[3]->kind != Kind::tuple ||
        a[2]->items.size() != a[3]->items.size() || a[2]->items.size() > kMaxRank)
      bad("_rebuild_tensor_v2: size and stride must be tuples of equal length (at most {})",
          kMaxRank);
    const StorageRec& rec = storages_[static_cast<size_t>(a[0]->i)];
    Shape shape, strides;
    uint64_t last = offset < 0 ? 0 : static_cast<uint64_t>(offset);
    bool empty = false, overflow = offset < 0;
    for (size_t d = 0; d < a[2]->items.size(); ++d) {
      const int64_t n = as_int(a[2]->items[d], "size"), s = as_int(a[3]->items[d], "stride");
      if (n < 0 || s < 0) bad("negative size {} or stride {}", n, s);
      shape.push_back(n);
      strides.push_back(s);
      uint64_t ext = 0;
      if (n == 0) empty = true;
      else if (__builtin_mul_overflow(static_cast<uint64_t>(n - 1), static_cast<uint64_t>(s), &ext) ||
               __builtin_add_overflow(last, ext, &last))
        overflow = true;
    }
    if (!empty && (overflow || last >= static_cast<uint64_t>(rec.numel)))
      fail<IoError>("{}: tensor of size {} stride {} at offset {} reaches past storage '{}' of {} "
                    "elements",
                    what_, shape_str(shape), shape_str(strides), offset, printable(rec.key),
                    rec.numel);
    const Tensor& flat = storage_tensor(static_cast<size_t>(a[0]->i));
    Obj* o = make(Kind::tensor);
    o->tensor = flat.alias_with(shape, strides, flat.offset() + (empty ? 0 : offset));
    return o;
  }

  Obj* call(Obj* fn, Obj* args) {
    if (fn->kind != Kind::global) bad("REDUCE on a {}", kind_name(fn->kind));
    if (args->kind != Kind::tuple) bad("REDUCE arguments are a {}, not a tuple", kind_name(args->kind));
    const auto& a = args->items;
    switch (fn->callable) {
      case Callable::ordered_dict:
        if (!a.empty()) bad("OrderedDict() with arguments");
        return make(Kind::dict);
      case Callable::rebuild_tensor:
        return rebuild_tensor(a);
      case Callable::rebuild_parameter:
      case Callable::rebuild_parameter_with_state:
        if (a.size() != (fn->callable == Callable::rebuild_parameter ? 3u : 4u) ||
            a[0]->kind != Kind::tensor)
          bad("{} expects (tensor, requires_grad, hooks{})", fn->s,
              fn->callable == Callable::rebuild_parameter ? "" : ", state");
        return a[0];
      case Callable::storage_type:
        refuse("a call to " + fn->s);
    }
    bad("unknown callable");
  }

  // Executes one opcode; returns the result at STOP, else nullptr.
  Obj* step() {
    op_pos_ = static_cast<size_t>(p_ - begin_);
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t v = *take(1);
        if (v > 5) bad("pickle protocol {} is newer than 5", v);
        return nullptr;
      }
      case 0x95: take(8); return nullptr;  // FRAME: a hint only
      case '.': {                          // STOP
        Obj* r = pop();
        return r;
      }
      case 'N': push(make(Kind::none)); return nullptr;
      case 0x88: push(make_int(1, Kind::boolean)); return nullptr;  // NEWTRUE
      case 0x89: push(make_int(0, Kind::boolean)); return nullptr;  // NEWFALSE
      case 'J': {  // BININT
        push(make_int(static_cast<int32_t>(le32(take(4)))));
        return nullptr;
      }
      case 'K': push(make_int(*take(1))); return nullptr;     // BININT1
      case 'M': push(make_int(le16(take(2)))); return nullptr;  // BININT2
      case 0x8a: {                                              // LONG1
        const uint8_t n = *take(1);
        if (n > 8) bad("integer of {} bytes does not fit in 64 bits", n);
        const uint8_t* q = take(n);
        uint64_t v = 0;
        for (int k = n - 1; k >= 0; --k) v = (v << 8) | q[k];
        if (n > 0 && n < 8 && (q[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);
        push(make_int(static_cast<int64_t>(v)));
        return nullptr;
      }
      case 'G': {  // BINFLOAT (big-endian)
        const uint8_t* q = take(8);
        uint64_t u = 0;
        for (int k = 0; k < 8; ++k) u = (u << 8) | q[k];
        Obj* o = make(Kind::floating);
        std::memcpy(&o->f, &u, 8);
        push(o);
        return nullptr;
      }
      case 'X': push(string(le32(take(4)))); return nullptr;   // BINUNICODE
      case 0x8c: push(string(*take(1))); return nullptr;       // SHORT_BINUNICODE
      case 0x8d: push(string(le64(take(8)))); return nullptr;  // BINUNICODE8
      case ')': push(tuple({})); return nullptr;               // EMPTY_TUPLE
      case ']': push(make(Kind::list)); return nullptr;        // EMPTY_LIST
      case '}': push(make(Kind::dict)); return nullptr;        // EMPTY_DICT
      case '(':                                                // MARK
        if (marks_.size() >= kMaxMarks) bad("more than {} nested MARKs", kMaxMarks);
        marks_.push_back(stack_.size());
        return nullptr;
      case 't': push(tuple(pop_mark())); return nullptr;  // TUPLE
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<Obj*> items(static_cast<size_t>(op - 0x84));
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        push(tuple(std::move(items)));
        return nullptr;
      }
      case 'a': {  // APPEND
        Obj* v = pop();
        Obj* l = top();
        if (l->kind != Kind::list) bad("APPEND to a {}", kind_name(l->kind));
        l->items.push_back(v);
        return nullptr;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark();
        Obj* l = top();
        if (l->kind != Kind::list) bad("APPENDS to a {}", kind_name(l->kind));
        l->items.insert(l->items.end(), items.begin(), items.end());
        return nullptr;
      }
      case 's': {  // SETITEM
        Obj* v = pop();
        Obj* k = pop();
        Obj* d = top();
        if (d->kind != Kind::dict) bad("SETITEM on a {}", kind_name(d->kind));
        d->pairs.emplace_back(k, v);
        return nullptr;
      }
      case 'u': {  // SETITEMS
        auto items = pop_mark();
        Obj* d = top();
        if (d->kind != Kind::dict) bad("SETITEMS on a {}", kind_name(d->kind));
        if (items.size() % 2) bad("SETITEMS with an odd number of items");
        for (size_t k = 0; k < items.size(); k += 2) d->pairs.emplace_back(items[k], items[k + 1]);
        return nullptr;
      }
      case 'q': memo_put(*take(1)); return nullptr;            // BINPUT
      case 'r': memo_put(le32(take(4))); return nullptr;       // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); return nullptr;       // MEMOIZE
      case 'h': push(memo_get(*take(1))); return nullptr;      // BINGET
      case 'j': push(memo_get(le32(take(4)))); return nullptr;  // LONG_BINGET
      case 'c': {                                              // GLOBAL
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        return nullptr;
      }
      case 0x93: {  // STACK_GLOBAL
        Obj* name = pop();
        Obj* module = pop();
        if (name->kind != Kind::string || module->kind != Kind::string)
          bad("STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        return nullptr;
      }
      case 'R': {  // REDUCE
        Obj* args = pop();
        Obj* fn = pop();
        push(call(fn, args));
        return nullptr;
      }
      case 'b': {  // BUILD: only the OrderedDict's attribute dict (_metadata), ignored
        pop();
        Obj* o = top();
        if (o->kind != Kind::dict) refuse(fmt::format("BUILD on a {}", kind_name(o->kind)));
        return nullptr;
      }
      case 'Q': {  // BINPERSID
        Obj* pid = pop();
        push(persistent_load(pid));
        return nullptr;
      }
      case 'i': refuse("opcode INST (arbitrary object construction)");
      case 'o': refuse("opcode OBJ (arbitrary object construction)");
      case 0x81: refuse("opcode NEWOBJ (arbitrary object construction)");
      case 0x92: refuse("opcode NEWOBJ_EX (arbitrary object construction)");
      case 0x82: case 0x83: case 0x84: refuse("opcode EXT (extension registry lookup)");
      case 'P': refuse("opcode PERSID (text persistent id)");
      default:
        refuse(fmt::format("opcode 0x{:02x} ('{}')", op, printable(std::string(1, char(op)))));
    }
  }
};

}  // namespace

StateDict unpickle_state_dict(const uint8_t* data, size_t size, const StorageResolver& resolve,
                              const std::string& what, std::optional<DType> convert_to) {
  check_convert_to(convert_to);
  return Unpickler(data, size, resolve, what, convert_to).run();
}

}  // namespace lmf::io::detail
