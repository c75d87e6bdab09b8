// Renderer of the Jinja subset: scoping, loops, macros, operators with Python semantics, and the
// filters, tests, methods and globals that chat templates use (jinja2 3.1 behaviour).
#include <utf8proc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <unordered_map>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/chat_template.h"
#include "tokenizers/jinja_util.h"

namespace lmf::tok::jinja {
namespace {

constexpr size_t kMaxOutput = size_t(64) << 20;  // bytes of rendered text (and of any one string)
constexpr size_t kMaxItems = size_t(1) << 20;    // elements of any one list
constexpr uint64_t kMaxSteps = 4'000'000;        // evaluated nodes per render
constexpr int kMaxCallDepth = 64;                // nested macro calls
constexpr int kMaxEvalDepth = 600;               // nested statements + expressions being evaluated
constexpr int64_t kMaxRange = 100000;            // jinja2.sandbox.MAX_RANGE

using Type = Value::Type;

struct RenderError {
  std::string msg;
};
[[noreturn]] void fail(std::string msg) {
  throw RenderError{std::move(msg)};
}

Value lazy(Value v) {
  v.lazy = true;
  return v;
}

bool iterable_type(const Value& v) {
  return v.type == Type::Undefined || v.type == Type::List || v.type == Type::Dict ||
         v.type == Type::String;
}

// A generator over a non-iterable: always true, raises when consumed (as jinja2's select/map).
Value poisoned(const Value& v) {
  Value g = lazy(Value::make_list({}));
  g.s = fmt::format("'{}' object is not iterable", type_name(v));
  return g;
}

bool truthy(const Value& v) {
  switch (v.type) {
    case Type::Undefined:
    case Type::None:
      return false;
    case Type::Bool:
      return v.b;
    case Type::Int:
      return v.i != 0;
    case Type::Float:
      return v.f != 0.0;
    case Type::String:
      return !v.s.empty();
    case Type::List:
      return v.lazy || !v.list->empty();  // a generator is always true
    case Type::Dict:
      return !v.dict->empty();
    default:
      return true;
  }
}

[[noreturn]] void undefined_error(const Value& v) {
  fail(v.s.empty() ? "value is undefined" : v.s);
}

double as_double(const Value& v) {
  return v.type == Type::Float ? v.f : v.type == Type::Bool ? double(v.b) : double(v.i);
}
bool is_intlike(const Value& v) {
  return v.type == Type::Int || v.type == Type::Bool;
}
int64_t as_int(const Value& v) {
  return v.type == Type::Bool ? int64_t(v.b) : v.i;
}

bool py_eq(const Value& a, const Value& b, int depth = 0) {
  if (depth > 256) fail("value nests too deeply to compare");
  if (a.is_number() && b.is_number()) {
    if (is_intlike(a) && is_intlike(b)) return as_int(a) == as_int(b);
    return as_double(a) == as_double(b);
  }
  if (a.type != b.type) return false;
  if (a.lazy || b.lazy) return a.list == b.list;
  switch (a.type) {
    case Type::Undefined:
    case Type::None:
      return true;
    case Type::String:
      return a.s == b.s;
    case Type::List:
      if (a.tuple != b.tuple || a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!py_eq((*a.list)[k], (*b.list)[k], depth + 1)) return false;
      return true;
    case Type::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, v] : *a.dict) {
        const Value* o = b.find(k);
        if (!o || !py_eq(v, *o, depth + 1)) return false;
      }
      return true;
    default:
      return a.dict == b.dict && a.fn == b.fn;
  }
}

// Python's a < b (strings compare by code point, which UTF-8 byte order preserves).
bool py_lt(const Value& a, const Value& b, int depth = 0) {
  if (depth > 256) fail("value nests too deeply to compare");
  if (a.is_number() && b.is_number()) {
    if (is_intlike(a) && is_intlike(b)) return as_int(a) < as_int(b);
    return as_double(a) < as_double(b);
  }
  if (a.type == Type::String && b.type == Type::String) return a.s < b.s;
  if (a.type == Type::List && b.type == Type::List && a.tuple == b.tuple) {
    const size_t n = std::min(a.list->size(), b.list->size());
    for (size_t k = 0; k < n; ++k) {
      if (py_eq((*a.list)[k], (*b.list)[k], depth + 1)) continue;
      return py_lt((*a.list)[k], (*b.list)[k], depth + 1);
    }
    return a.list->size() < b.list->size();
  }
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  fail(fmt::format("'<' not supported between instances of '{}' and '{}'", type_name(a),
                   type_name(b)));
}

// ---- strings ----
size_t char_count(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string map_case(const std::string& s, int mode) {  // 0 lower, 1 upper, 2 title
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size();) {
    size_t len = 1;
    const uint32_t cp = decode_utf8(s, k, len);
    const bool bad = cp == 0xFFFD && len == 1 && static_cast<unsigned char>(s[k]) >= 0x80;
    if (bad) {
      out += s[k];
    } else {
      const int32_t m = mode == 0   ? utf8proc_tolower(int32_t(cp))
                        : mode == 1 ? utf8proc_toupper(int32_t(cp))
                                    : utf8proc_totitle(int32_t(cp));
      utf8proc_uint8_t buf[4];
      const auto n = utf8proc_encode_char(m, buf);
      out.append(reinterpret_cast<const char*>(buf), size_t(n));
    }
    k += len;
  }
  return out;
}

bool is_cased_letter(uint32_t cp) {
  const auto c = utf8proc_category(int32_t(cp));
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT ||
         c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_LO;
}

// Python str.title(): a letter after a non-letter starts a word.
std::string py_title(const std::string& s) {
  std::string out;
  bool prev_letter = false;
  for (const std::string& ch : split_chars(s)) {
    size_t len = 1;
    const uint32_t cp = decode_utf8(ch, 0, len);
    const bool letter = is_cased_letter(cp);
    out += letter ? map_case(ch, prev_letter ? 0 : 2) : ch;
    prev_letter = letter;
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  auto chars = split_chars(s);
  std::string out;
  for (size_t k = 0; k < chars.size(); ++k) out += map_case(chars[k], k == 0 ? 1 : 0);
  return out;
}

bool is_py_space(const std::string& ch) {
  if (ch.size() == 1) {
    const char c = ch[0];
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
  }
  size_t len = 1;
  const uint32_t cp = decode_utf8(ch, 0, len);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
  auto cs = split_chars(s);
  std::vector<std::string> set;
  const bool custom = chars && !chars->is_none();
  if (custom) {
    if (!chars->is_string()) fail("strip arg must be None or str");
    set = split_chars(chars->s);
  }
  auto strip_it = [&](const std::string& ch) {
    return custom ? std::find(set.begin(), set.end(), ch) != set.end() : is_py_space(ch);
  };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip_it(cs[b])) ++b;
  if (right)
    while (e > b && strip_it(cs[e - 1])) --e;
  std::string out;
  for (size_t k = b; k < e; ++k) out += cs[k];
  return out;
}

std::vector<std::string> py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (!sep || sep->is_none()) {
    auto cs = split_chars(s);
    size_t k = 0;
    while (k < cs.size()) {
      while (k < cs.size() && is_py_space(cs[k])) ++k;
      if (k >= cs.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        std::string rest;
        for (size_t j = k; j < cs.size(); ++j) rest += cs[j];
        // Python keeps trailing whitespace of the remainder only when it is not at the end.
        size_t e = cs.size();
        while (e > k && is_py_space(cs[e - 1])) --e;
        rest.clear();
        for (size_t j = k; j < e; ++j) rest += cs[j];
        out.push_back(rest);
        return out;
      }
      std::string word;
      while (k < cs.size() && !is_py_space(cs[k])) word += cs[k++];
      out.push_back(word);
    }
    return out;
  }
  if (!sep->is_string()) fail("split: separator must be a string or None");
  if (sep->s.empty()) fail("empty separator");
  size_t pos = 0;
  while (true) {
    if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) break;
    const size_t f = s.find(sep->s, pos);
    if (f == std::string::npos) break;
    out.push_back(s.substr(pos, f - pos));
    pos = f + sep->s.size();
  }
  out.push_back(s.substr(pos));
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& rep,
                       int64_t count) {
  std::string out;
  if (old.empty()) {
    auto cs = split_chars(s);
    int64_t done = 0;
    for (size_t k = 0; k <= cs.size(); ++k) {
      if (count < 0 || done < count) {
        out += rep;
        ++done;
      }
      if (k < cs.size()) out += cs[k];
      if (out.size() > kMaxOutput) fail("replace result is too large");
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += rep;
    if (out.size() > kMaxOutput) fail("replace result is too large");
    pos = f + old.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// Python's str.format with {} / {0} / {name} fields and {{ }} escapes (no format specs).
std::string py_format(const std::string& fmtstr, const CallArgs& args) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < fmtstr.size(); ++k) {
    const char c = fmtstr[k];
    if (c == '{' && k + 1 < fmtstr.size() && fmtstr[k + 1] == '{') {
      out += '{';
      ++k;
    } else if (c == '}' && k + 1 < fmtstr.size() && fmtstr[k + 1] == '}') {
      out += '}';
      ++k;
    } else if (c == '{') {
      const size_t e = fmtstr.find('}', k);
      if (e == std::string::npos) fail("format: single '{' encountered in format string");
      std::string field = fmtstr.substr(k + 1, e - k - 1);
      if (field.find_first_of(":!") != std::string::npos)
        fail("format: format specs are not supported");
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_idx >= args.pos.size()) fail("format: replacement index out of range");
        v = &args.pos[auto_idx++];
      } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
        const size_t idx = std::stoul(field);
        if (idx >= args.pos.size()) fail("format: replacement index out of range");
        v = &args.pos[idx];
      } else {
        for (const auto& [n, x] : args.kw)
          if (n == field) v = &x;
        if (!v) fail("format: missing key '" + field + "'");
      }
      out += to_str(*v);
      k = e;
    } else if (c == '}') {
      fail("format: single '}' encountered in format string");
    } else {
      out += c;
    }
  }
  return out;
}

// Python's `fmt % args` for %s %r %d %i %f %x %% with -/0 flags, width and precision.
std::string printf_format(const std::string& f, const Value& args) {
  List pos = args.is_list() && args.tuple ? *args.list : List{args};
  const bool mapping = args.type == Type::Dict;
  size_t next = 0;
  std::string out;
  for (size_t k = 0; k < f.size(); ++k) {
    if (f[k] != '%') {
      out += f[k];
      continue;
    }
    if (++k >= f.size()) fail("incomplete format");
    const Value* v = nullptr;
    if (f[k] == '(') {
      const size_t e = f.find(')', k);
      if (e == std::string::npos || !mapping) fail("format requires a mapping");
      v = args.find(f.substr(k + 1, e - k - 1));
      if (!v) fail(fmt::format("KeyError: '{}'", f.substr(k + 1, e - k - 1)));
      k = e + 1;
    }
    bool left = false, zero = false;
    for (; k < f.size() && (f[k] == '-' || f[k] == '0' || f[k] == ' ' || f[k] == '+'); ++k) {
      left |= f[k] == '-';
      zero |= f[k] == '0';
    }
    size_t width = 0;
    for (; k < f.size() && std::isdigit(static_cast<unsigned char>(f[k])); ++k)
      width = std::min<size_t>(width * 10 + size_t(f[k] - '0'), 4096);
    int prec = -1;
    if (k < f.size() && f[k] == '.') {
      prec = 0;
      for (++k; k < f.size() && std::isdigit(static_cast<unsigned char>(f[k])); ++k)
        prec = std::min(prec * 10 + (f[k] - '0'), 100);
    }
    if (k >= f.size()) fail("incomplete format");
    const char conv = f[k];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!v) {
      if (mapping)
        v = &args;
      else if (next < pos.size())
        v = &pos[next++];
      else
        fail("not enough arguments for format string");
    }
    std::string piece;
    switch (conv) {
      case 's':
        piece = to_str(*v);
        break;
      case 'r':
        piece = to_repr(*v);
        break;
      case 'd':
      case 'i':
      case 'x':
      case 'f': {
        if (!v->is_number())
          fail(fmt::format("%{} format: a real number is required, not {}", conv, type_name(*v)));
        if (conv == 'f') {
          piece = fmt::format("{:.{}f}", as_double(*v), prec < 0 ? 6 : prec);
        } else {
          const int64_t n = is_intlike(*v) ? as_int(*v) : int64_t(v->f);
          piece = conv == 'x' ? fmt::format("{:x}", n) : std::to_string(n);
        }
        break;
      }
      default:
        fail(fmt::format("unsupported format character '{}'", conv));
    }
    if (conv == 's' && prec >= 0) {
      auto cs = split_chars(piece);
      if (cs.size() > size_t(prec)) {
        piece.clear();
        for (int j = 0; j < prec; ++j) piece += cs[size_t(j)];
      }
    }
    const size_t len = char_count(piece);
    if (len < width) {
      const std::string pad(width - len, zero && !left && conv != 's' && conv != 'r' ? '0' : ' ');
      piece = left ? piece + pad : pad + piece;
    }
    out += piece;
  }
  if (!mapping && next < pos.size()) fail("not all arguments converted during string formatting");
  return out;
}

// ---- argument binding ----
struct Bound {
  std::vector<const Value*> v;
  const Value* operator[](size_t k) const { return v[k]; }
};
Bound bind(const CallArgs& a, std::initializer_list<const char*> names, const std::string& what) {
  Bound b;
  b.v.assign(names.size(), nullptr);
  if (a.pos.size() > names.size())
    fail(fmt::format("{}() takes at most {} arguments ({} given)", what, names.size(),
                     a.pos.size()));
  for (size_t k = 0; k < a.pos.size(); ++k) b.v[k] = &a.pos[k];
  for (const auto& [n, x] : a.kw) {
    size_t k = 0;
    for (const char* nm : names) {
      if (n == nm) break;
      ++k;
    }
    if (k == names.size())
      fail(fmt::format("{}() got an unexpected keyword argument '{}'", what, n));
    if (b.v[k]) fail(fmt::format("{}() got multiple values for argument '{}'", what, n));
    b.v[k] = &x;
  }
  return b;
}
int64_t int_arg(const Value* v, int64_t dflt, const char* what) {
  if (!v || v->is_none()) return dflt;
  if (!is_intlike(*v)) fail(fmt::format("{}: expected an integer, got {}", what, type_name(*v)));
  return as_int(*v);
}
const std::string& str_arg(const Value* v, const char* what) {
  if (!v || !v->is_string())
    fail(fmt::format("{}: expected a string, got {}", what, v ? type_name(*v) : "nothing"));
  return v->s;
}

// Items of an iterable as Python iterates them (dict: keys, str: characters).
List iterate(const Value& v) {
  switch (v.type) {
    case Type::Undefined:
      return {};
    case Type::List:
      if (v.lazy && !v.s.empty()) fail(v.s);  // a generator that raises when consumed
      return *v.list;
    case Type::Dict: {
      List out;
      for (const auto& kv : *v.dict) out.push_back(Value::string(kv.first));
      return out;
    }
    case Type::String: {
      List out;
      for (auto& c : split_chars(v.s)) out.push_back(Value::string(std::move(c)));
      return out;
    }
    default:
      fail(fmt::format("'{}' object is not iterable", type_name(v)));
  }
}

Value check_list(List l, bool tuple = false) {
  if (l.size() > kMaxItems) fail("list is too large");
  return Value::make_list(std::move(l), tuple);
}

Value check_string(std::string s) {
  if (s.size() > kMaxOutput) fail("string is too large");
  return Value::string(std::move(s));
}

// Python-style index normalisation; returns false when out of range.
bool norm_index(int64_t& i, size_t n) {
  if (i < 0) i += int64_t(n);
  return i >= 0 && i < int64_t(n);
}

Value slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  if (obj.lazy) return Value::undefined("'generator' object is not subscriptable");
  const int64_t st = int_arg(step, 1, "slice step");
  if (st == 0) fail("slice step cannot be zero");
  auto idx = [&](const Value* v, int64_t n, int64_t dflt) {
    if (!v || v->is_none()) return dflt;
    int64_t i = int_arg(v, 0, "slice index");
    if (i < 0) {
      i += n;
      if (i < 0) i = st < 0 ? -1 : 0;
    } else if (i >= n) {
      i = st < 0 ? n - 1 : n;
    }
    return i;
  };
  auto pick = [&](int64_t n, auto&& emit) {
    const int64_t b = idx(start, n, st < 0 ? n - 1 : 0);
    const int64_t e = idx(stop, n, st < 0 ? -1 : n);
    if (st > 0)
      for (int64_t k = b; k < e; k += st) emit(size_t(k));
    else
      for (int64_t k = b; k > e; k += st) emit(size_t(k));
  };
  if (obj.type == Type::String) {
    auto cs = split_chars(obj.s);
    std::string out;
    pick(int64_t(cs.size()), [&](size_t k) { out += cs[k]; });
    return Value::string(out);
  }
  if (obj.type == Type::List) {
    List out;
    pick(int64_t(obj.list->size()), [&](size_t k) { out.push_back((*obj.list)[k]); });
    return Value::make_list(std::move(out), obj.tuple);
  }
  if (obj.is_undefined()) undefined_error(obj);
  fail(fmt::format("'{}' object is not subscriptable", type_name(obj)));
}

// obj[key] as jinja2's environment.getitem: missing keys give undefined.
Value get_item(const Value& obj, const Value& key) {
  if (obj.lazy) return Value::undefined("'generator' object is not subscriptable");
  switch (obj.type) {
    case Type::Undefined:
      undefined_error(obj);
    case Type::Dict:
    case Type::Namespace: {
      if (key.is_string()) {
        if (const Value* v = obj.find(key.s)) return *v;
        return Value::undefined(fmt::format("'dict object' has no attribute '{}'", key.s));
      }
      return Value::undefined(fmt::format("'dict object' has no attribute {}", to_repr(key)));
    }
    case Type::List:
    case Type::String: {
      if (!is_intlike(key)) {
        if (key.is_string())
          return Value::undefined(
              fmt::format("'{} object' has no attribute '{}'", type_name(obj), key.s));
        fail(fmt::format("{} indices must be integers, not {}", type_name(obj), type_name(key)));
      }
      int64_t i = as_int(key);
      if (obj.type == Type::List) {
        if (!norm_index(i, obj.list->size()))
          return Value::undefined(
              fmt::format("{} object has no element {}", type_name(obj), as_int(key)));
        return (*obj.list)[size_t(i)];
      }
      auto cs = split_chars(obj.s);
      if (!norm_index(i, cs.size()))
        return Value::undefined(fmt::format("str object has no element {}", as_int(key)));
      return Value::string(cs[size_t(i)]);
    }
    default:
      return Value::undefined(
          fmt::format("'{}' object has no attribute {}", type_name(obj), to_repr(key)));
  }
}

Value attr_path(const Value& obj, const std::string& path) {
  Value cur = obj;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part =
        path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (cur.is_undefined()) undefined_error(cur);
    if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) &&
        cur.type == Type::List) {
      cur = get_item(cur, Value::integer(std::stoll(part.substr(0, 18))));
    } else {
      cur = get_item(cur, Value::string(part));
    }
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

class Renderer;
using Frame = std::unordered_map<std::string, Value>;

class Renderer {
 public:
  Renderer(const Program& prog, const Value& ctx) : prog_(prog), ctx_(ctx) {
    frames_.push_back(std::make_shared<Frame>());
  }

  // Namespaces are the only mutable values, so the only way to build a reference cycle (or a
  // chain of unbounded depth): empty them all when the render ends.
  ~Renderer() {
    for (auto& ns : namespaces_) ns->clear();
  }

  std::string run() {
    exec(prog_.body);
    return std::move(out_);
  }

 private:
  enum class Flow { Normal, Break, Continue };

  void tick() {
    if (++steps_ > kMaxSteps)
      fail("template takes too many steps to render (possible endless work)");
  }

  void emit(const std::string& s) {
    out_ += s;
    if (out_.size() > kMaxOutput) fail("rendered output exceeds 64 MiB");
  }

  // ---- scope ----
  Value lookup(const std::string& name) {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto f = (*it)->find(name);
      if (f != (*it)->end()) return f->second;
    }
    if (const Value* v = ctx_.find(name)) return *v;
    if (Value g = global(name); !g.is_undefined()) return g;
    return Value::undefined(fmt::format("'{}' is undefined", name));
  }
  void assign(const std::string& name, Value v) { (*frames_.back())[name] = std::move(v); }

  Value global(const std::string& name);

  // ---- statements ----
  [[noreturn]] void node_fail(const Node& n, const std::string& msg) {
    throw ValueError(fmt::format("chat template: line {}, column {}: {}", n.line, n.col, msg));
  }

  Flow exec(const Body& body) {
    for (const auto& n : body) {
      Flow f = exec_node(*n);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec_node(const Node& n) {
    tick();
    DepthGuard guard(eval_depth_);
    try {
      switch (n.kind) {
        case NK::Text:
          emit(n.text);
          return Flow::Normal;
        case NK::Output:
          emit(to_str(eval(*n.expr)));
          return Flow::Normal;
        case NK::If:
          for (const auto& [cond, body] : n.branches)
            if (!cond || truthy(eval(*cond))) return exec(body);
          return Flow::Normal;
        case NK::For:
          exec_for(n);
          return Flow::Normal;
        case NK::Set:
          exec_set(n);
          return Flow::Normal;
        case NK::SetBlock:
          assign(n.targets[0], Value::string(capture(n.body)));
          return Flow::Normal;
        case NK::Macro:
          assign(n.text, make_macro(n));
          return Flow::Normal;
        case NK::Break:
          return Flow::Break;
        case NK::Continue:
          return Flow::Continue;
        case NK::Generation:
          return exec(n.body);
      }
    } catch (const RenderError& e) {
      node_fail(n, e.msg);
    }
    return Flow::Normal;
  }

  std::string capture(const Body& body) {
    std::string saved = std::move(out_);
    out_.clear();
    try {
      exec(body);
    } catch (...) {
      out_ = std::move(saved);
      throw;
    }
    std::string got = std::move(out_);
    out_ = std::move(saved);
    return got;
  }

  void unpack(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      assign(targets[0], v);
      return;
    }
    List items = iterate(v);
    if (items.size() != targets.size())
      fail(fmt::format("cannot unpack {} values into {} names", items.size(), targets.size()));
    for (size_t k = 0; k < targets.size(); ++k) assign(targets[k], items[k]);
  }

  void exec_for(const Node& n) {
    Value seq = eval(*n.expr);
    List items = iterate(seq);
    if (n.filter) {
      List kept;
      for (const auto& it : items) {
        frames_.push_back(std::make_shared<Frame>());
        try {
          unpack(n.targets, it);
          if (truthy(eval(*n.filter))) kept.push_back(it);
        } catch (...) {
          frames_.pop_back();
          throw;
        }
        frames_.pop_back();
      }
      items = std::move(kept);
    }
    // jinja2 runs the else block unless some iteration reached the end of the body: an empty
    // loop, but also one whose every pass ended in continue, or that broke out in its first pass.
    bool completed_one = false;
    const int64_t len = int64_t(items.size());
    for (int64_t k = 0; k < len; ++k) {
      tick();
      auto frame = std::make_shared<Frame>();
      Dict loop = {
          {"index", Value::integer(k + 1)},      {"index0", Value::integer(k)},
          {"revindex", Value::integer(len - k)}, {"revindex0", Value::integer(len - k - 1)},
          {"first", Value::boolean(k == 0)},     {"last", Value::boolean(k == len - 1)},
          {"length", Value::integer(len)},       {"depth", Value::integer(1)},
          {"depth0", Value::integer(0)}};
      if (k > 0) loop.emplace_back("previtem", items[size_t(k - 1)]);
      if (k + 1 < len) loop.emplace_back("nextitem", items[size_t(k + 1)]);
      (*frame)["loop"] = Value::make_dict(std::move(loop));
      frames_.push_back(frame);
      Flow f;
      try {
        unpack(n.targets, items[size_t(k)]);
        f = exec(n.body);
      } catch (...) {
        frames_.pop_back();
        throw;
      }
      frames_.pop_back();
      if (f == Flow::Normal) completed_one = true;
      if (f == Flow::Break) break;
    }
    if (!completed_one) exec(n.else_body);
  }

  void exec_set(const Node& n) {
    Value v = eval(*n.expr);
    if (!n.text.empty()) {
      Value target = lookup(n.targets[0]);
      if (target.type != Type::Namespace) fail("cannot assign attribute on non-namespace object");
      if (!n.text.empty() && n.text[0] == '_')
        fail(fmt::format(
            "Chat templates cannot store underscore-prefixed attributes on a namespace, "
            "but got '{}'. Please rename the attribute.",
            n.text));
      for (auto& [k, x] : *target.dict)
        if (k == n.text) {
          x = std::move(v);
          return;
        }
      target.dict->emplace_back(n.text, std::move(v));
      return;
    }
    unpack(n.targets, v);
  }

  Value make_macro(const Node& n) {
    const Node* node = &n;
    return Value::function([this, node](CallArgs& a) { return call_macro(*node, a); });
  }

  Value call_macro(const Node& n, CallArgs& a) {
    if (call_depth_ >= kMaxCallDepth) fail("macro calls nest too deeply");
    if (a.pos.size() > n.params.size())
      fail(fmt::format("macro '{}' takes not more than {} argument(s)", n.text, n.params.size()));
    auto frame = std::make_shared<Frame>();
    std::vector<bool> given(n.params.size(), false);
    for (size_t k = 0; k < a.pos.size(); ++k) {
      (*frame)[n.params[k]] = a.pos[k];
      given[k] = true;
    }
    for (auto& [name, v] : a.kw) {
      auto it = std::find(n.params.begin(), n.params.end(), name);
      if (it == n.params.end()) fail(fmt::format("macro '{}' has no argument '{}'", n.text, name));
      (*frame)[name] = v;
      given[size_t(it - n.params.begin())] = true;
    }
    std::vector<std::shared_ptr<Frame>> saved = {frames_[0], frame};
    std::swap(saved, frames_);
    ++call_depth_;
    std::string text;
    try {
      const size_t first_default = n.params.size() - n.defaults.size();
      for (size_t k = 0; k < n.params.size(); ++k) {
        if (given[k]) continue;
        if (k >= first_default)
          (*frame)[n.params[k]] = eval(*n.defaults[k - first_default]);
        else
          (*frame)[n.params[k]] = Value::undefined(fmt::format("'{}' is undefined", n.params[k]));
      }
      text = capture(n.body);
    } catch (...) {
      --call_depth_;
      std::swap(saved, frames_);
      throw;
    }
    --call_depth_;
    std::swap(saved, frames_);
    return Value::string(std::move(text));
  }

  // ---- expressions ----
  struct DepthGuard {
    int& d;
    explicit DepthGuard(int& depth) : d(depth) {
      if (++d > kMaxEvalDepth) {
        --d;
        fail("template evaluation nests too deeply (recursion?)");
      }
    }
    ~DepthGuard() { --d; }
  };

  Value eval(const Expr& e) {
    tick();
    DepthGuard guard(eval_depth_);
    switch (e.kind) {
      case EK::Literal:
        return e.lit;
      case EK::Name:
        return lookup(e.name);
      case EK::List:
      case EK::Tuple: {
        List l;
        for (const auto& x : e.items) l.push_back(eval(*x));
        return Value::make_list(std::move(l), e.kind == EK::Tuple);
      }
      case EK::Dict: {
        Dict d;
        for (size_t k = 0; k + 1 < e.items.size(); k += 2) {
          Value key = eval(*e.items[k]);
          Value val = eval(*e.items[k + 1]);
          std::string ks = key.is_string() ? key.s : to_str(key);
          bool replaced = false;
          for (auto& [dk, dv] : d)
            if (dk == ks) {
              dv = val;
              replaced = true;
            }
          if (!replaced) d.emplace_back(std::move(ks), std::move(val));
        }
        return Value::make_dict(std::move(d));
      }
      case EK::GetAttr:
        return get_attr(eval(*e.a), e.name);
      case EK::GetItem:
        return get_item(eval(*e.a), eval(*e.b));
      case EK::Slice: {
        Value obj = eval(*e.a);
        Value parts[3];
        const Value* ptrs[3] = {nullptr, nullptr, nullptr};
        for (int k = 0; k < 3; ++k)
          if (e.items[size_t(k)]) {
            parts[k] = eval(*e.items[size_t(k)]);
            ptrs[k] = &parts[k];
          }
        return slice(obj, ptrs[0], ptrs[1], ptrs[2]);
      }
      case EK::Call: {
        Value fn = eval(*e.a);
        CallArgs args = eval_args(e);
        if (fn.type != Type::Function) {
          if (fn.is_undefined()) undefined_error(fn);
          fail(fmt::format("'{}' object is not callable", type_name(fn)));
        }
        return (*fn.fn)(args);
      }
      case EK::Filter: {
        Value v = eval(*e.a);
        CallArgs args = eval_args(e);
        return apply_filter(e.name, v, args);
      }
      case EK::Test: {
        Value v = eval(*e.a);
        CallArgs args = eval_args(e);
        const bool r = apply_test(e.name, v, args);
        return Value::boolean(e.negated ? !r : r);
      }
      case EK::Neg:
      case EK::Pos: {
        Value v = eval(*e.a);
        if (v.is_undefined()) undefined_error(v);
        if (!v.is_number())
          fail(fmt::format("bad operand type for unary {}: '{}'", e.kind == EK::Neg ? '-' : '+',
                           type_name(v)));
        if (e.kind == EK::Pos) return is_intlike(v) ? Value::integer(as_int(v)) : v;
        if (is_intlike(v)) {
          if (as_int(v) == INT64_MIN) fail("integer overflow");
          return Value::integer(-as_int(v));
        }
        return Value::number(-v.f);
      }
      case EK::Not:
        return Value::boolean(!truthy(eval(*e.a)));
      case EK::And: {
        Value a = eval(*e.a);
        return truthy(a) ? eval(*e.b) : a;
      }
      case EK::Or: {
        Value a = eval(*e.a);
        return truthy(a) ? a : eval(*e.b);
      }
      case EK::Cond: {
        if (truthy(eval(*e.b))) return eval(*e.a);
        if (e.c) return eval(*e.c);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
      }
      case EK::Concat: {  // operands left to right, as Python evaluates them
        std::string left = to_str(eval(*e.a));
        return check_string(left + to_str(eval(*e.b)));
      }
      case EK::Binary: {
        Value left = eval(*e.a);
        return binary(e.name, left, eval(*e.b));
      }
      case EK::Compare: {
        Value left = eval(*e.a);
        for (const auto& [op, rhs] : e.kwargs) {
          Value right = eval(*rhs);
          bool r;
          if (op == "==")
            r = py_eq(left, right);
          else if (op == "!=")
            r = !py_eq(left, right);
          else if (op == "<")
            r = py_lt(left, right);
          else if (op == ">")
            r = py_lt(right, left);
          else if (op == "<=")
            r = py_lt(left, right) || py_eq(left, right);
          else if (op == ">=")
            r = py_lt(right, left) || py_eq(left, right);
          else if (op == "in")
            r = contains(right, left);
          else
            r = !contains(right, left);
          if (!r) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
    }
    fail("unknown expression");
  }

  CallArgs eval_args(const Expr& e) {
    CallArgs a;
    for (const auto& x : e.items) a.pos.push_back(eval(*x));
    for (const auto& [n, x] : e.kwargs) a.kw.emplace_back(n, eval(*x));
    return a;
  }

  static bool contains(const Value& container, const Value& item) {
    switch (container.type) {
      case Type::Undefined:
        return false;
      case Type::String:
        if (!item.is_string())
          fail(fmt::format("'in <string>' requires string as left operand, not {}",
                           type_name(item)));
        return container.s.find(item.s) != std::string::npos;
      case Type::List:
        for (const auto& x : *container.list)
          if (py_eq(x, item)) return true;
        return false;
      case Type::Dict:
      case Type::Namespace:
        return item.is_string() && container.find(item.s) != nullptr;
      default:
        fail(fmt::format("argument of type '{}' is not iterable", type_name(container)));
    }
  }

  static Value binary(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    if (a.lazy || b.lazy)
      fail(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a),
                       type_name(b)));
    auto type_err = [&]() -> Value {
      fail(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a),
                       type_name(b)));
    };
    const bool nums = a.is_number() && b.is_number();
    const bool ints = is_intlike(a) && is_intlike(b);
    if (op == "+") {
      if (ints) {
        int64_t r;
        if (__builtin_add_overflow(as_int(a), as_int(b), &r)) fail("integer overflow");
        return Value::integer(r);
      }
      if (nums) return Value::number(as_double(a) + as_double(b));
      if (a.is_string() && b.is_string()) return check_string(a.s + b.s);
      if (a.is_list() && b.is_list() && a.tuple == b.tuple) {
        List l = *a.list;
        l.insert(l.end(), b.list->begin(), b.list->end());
        return check_list(std::move(l), a.tuple);
      }
      if (a.is_string() || b.is_string())
        fail(fmt::format("can only concatenate str (not \"{}\") to str",
                         type_name(a.is_string() ? b : a)));
      return type_err();
    }
    if (op == "-") {
      if (ints) {
        int64_t r;
        if (__builtin_sub_overflow(as_int(a), as_int(b), &r)) fail("integer overflow");
        return Value::integer(r);
      }
      if (nums) return Value::number(as_double(a) - as_double(b));
      return type_err();
    }
    if (op == "*") {
      if (ints) {
        int64_t r;
        if (__builtin_mul_overflow(as_int(a), as_int(b), &r)) fail("integer overflow");
        return Value::integer(r);
      }
      if (nums) return Value::number(as_double(a) * as_double(b));
      const Value* seq = (a.is_string() || a.is_list())   ? &a
                         : (b.is_string() || b.is_list()) ? &b
                                                          : nullptr;
      const Value* cnt = seq == &a ? &b : &a;
      if (seq && is_intlike(*cnt)) {
        const int64_t n = std::max<int64_t>(0, as_int(*cnt));
        const size_t unit = seq->is_string() ? seq->s.size() : seq->list->size();
        if (unit > 0 && uint64_t(n) > (seq->is_string() ? kMaxOutput : kMaxItems) / unit)
          fail("repeated sequence is too large");
        if (seq->is_list()) {
          size_t bytes = 0;  // elements are copied: bound the text they carry too
          for (const auto& x : *seq->list) bytes += x.s.size() + sizeof(Value);
          if (bytes > 0 && uint64_t(n) > kMaxOutput / bytes) fail("repeated sequence is too large");
        }
        if (seq->is_string()) {
          std::string s;
          for (int64_t k = 0; k < n; ++k) s += seq->s;
          return Value::string(std::move(s));
        }
        List l;
        for (int64_t k = 0; k < n; ++k) l.insert(l.end(), seq->list->begin(), seq->list->end());
        return Value::make_list(std::move(l), seq->tuple);
      }
      return type_err();
    }
    if (op == "/") {
      if (!nums) return type_err();
      if (as_double(b) == 0) fail("division by zero");
      return Value::number(as_double(a) / as_double(b));
    }
    if (op == "//" || op == "%") {
      if (!nums) {
        if (op == "%" && a.is_string()) return check_string(printf_format(a.s, b));
        return type_err();
      }
      if (ints) {
        const int64_t x = as_int(a), y = as_int(b);
        if (y == 0)
          fail(op == "//" ? "integer division or modulo by zero" : "integer modulo by zero");
        if (x == INT64_MIN && y == -1) fail("integer overflow");
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return Value::integer(op == "//" ? q : r);
      }
      const double x = as_double(a), y = as_double(b);
      if (y == 0) fail("float division by zero");
      double r = std::fmod(x, y);
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      if (op == "%") return Value::number(r);
      return Value::number(std::round((x - r) / y));
    }
    if (op == "**") {
      if (ints && as_int(b) >= 0) {
        int64_t r = 1, base = as_int(a);
        for (int64_t k = 0; k < as_int(b); ++k) {
          if (__builtin_mul_overflow(r, base, &r)) fail("integer overflow");
          if (r == 0 || r == 1) break;
        }
        return Value::integer(r);
      }
      if (nums) return Value::number(std::pow(as_double(a), as_double(b)));
      return type_err();
    }
    return type_err();
  }

  // obj.name as jinja2's sandboxed getattr: methods of str/dict/list, then keys.
  Value get_attr(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) undefined_error(obj);
    if (obj.type == Type::Dict && is_dict_method(name)) return bind_method(obj, name);
    if (obj.type == Type::Dict || obj.type == Type::Namespace) {
      if (const Value* v = obj.find(name)) return *v;
      return Value::undefined(fmt::format("'{} object' has no attribute '{}'",
                                          obj.type == Type::Dict ? "dict" : "Namespace", name));
    }
    if (obj.type == Type::String && is_str_method(name)) return bind_method(obj, name);
    if (obj.type == Type::List && (name == "index" || name == "count"))
      return bind_method(obj, name);
    if (obj.type == Type::List &&
        (name == "append" || name == "pop" || name == "insert" || name == "extend" ||
         name == "remove" || name == "clear" || name == "sort" || name == "reverse"))
      fail(fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, type_name(obj)));
    std::string tn = obj.is_none() ? "None" : type_name(obj) + " object";
    return Value::undefined(fmt::format("'{}' has no attribute '{}'", tn, name));
  }

  static bool is_dict_method(const std::string& n) {
    return n == "items" || n == "keys" || n == "values" || n == "get";
  }
  static bool is_str_method(const std::string& n) {
    static const char* names[] = {"strip",      "lstrip",   "rstrip",  "split",      "rsplit",
                                  "startswith", "endswith", "upper",   "lower",      "title",
                                  "capitalize", "replace",  "format",  "find",       "rfind",
                                  "count",      "join",     "isdigit", "isalpha",    "isspace",
                                  "islower",    "isupper",  "isalnum", "splitlines", "index"};
    for (const char* x : names)
      if (n == x) return true;
    return false;
  }

  Value bind_method(const Value& self, const std::string& name) {
    return Value::function([self, name](CallArgs& a) { return call_method(self, name, a); });
  }

  static Value str_list(const std::vector<std::string>& parts) {
    List l;
    for (const auto& p : parts) l.push_back(Value::string(p));
    return check_list(std::move(l));
  }

  static Value call_method(const Value& self, const std::string& name, CallArgs& a) {
    if (self.type == Type::Dict) {
      if (name == "items") {
        bind(a, {}, "items");
        List l;
        for (const auto& [k, v] : *self.dict)
          l.push_back(Value::make_list({Value::string(k), v}, true));
        return Value::make_list(std::move(l));
      }
      if (name == "keys" || name == "values") {
        bind(a, {}, name);
        List l;
        for (const auto& [k, v] : *self.dict) l.push_back(name == "keys" ? Value::string(k) : v);
        return Value::make_list(std::move(l));
      }
      auto b = bind(a, {"key", "default"}, "get");
      if (!b[0]) fail("get expected at least 1 argument, got 0");
      if (b[0]->is_string())
        if (const Value* v = self.find(b[0]->s)) return *v;
      return b[1] ? *b[1] : Value::none();
    }
    if (self.type == Type::List) {
      auto b = bind(a, {"value"}, name);
      if (!b[0]) fail(name + "() takes exactly one argument");
      int64_t count = 0;
      for (size_t k = 0; k < self.list->size(); ++k)
        if (py_eq((*self.list)[k], *b[0])) {
          if (name == "index") return Value::integer(int64_t(k));
          ++count;
        }
      if (name == "index") fail(to_repr(*b[0]) + " is not in list");
      return Value::integer(count);
    }
    const std::string& s = self.s;
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      auto b = bind(a, {"chars"}, name);
      return Value::string(py_strip(s, b[0], name != "rstrip", name != "lstrip"));
    }
    if (name == "split" || name == "rsplit") {
      auto b = bind(a, {"sep", "maxsplit"}, name);
      const int64_t maxsplit = int_arg(b[1], -1, "split");
      if (name == "rsplit" && maxsplit >= 0) {
        // Split from the right: reverse, split on the reversed separator, reverse back.
        auto rev = [](const std::string& x) {
          auto cs = split_chars(x);
          std::string r;
          for (auto it = cs.rbegin(); it != cs.rend(); ++it) r += *it;
          return r;
        };
        Value rsep;
        if (b[0] && !b[0]->is_none()) rsep = Value::string(rev(str_arg(b[0], "rsplit")));
        auto parts = py_split(rev(s), b[0] && !b[0]->is_none() ? &rsep : nullptr, maxsplit);
        std::reverse(parts.begin(), parts.end());
        for (auto& p : parts) p = rev(p);
        return str_list(parts);
      }
      return str_list(py_split(s, b[0], maxsplit));
    }
    if (name == "splitlines") {
      bind(a, {}, name);
      std::vector<std::string> parts;
      std::string cur;
      for (size_t k = 0; k < s.size(); ++k) {
        if (s[k] == '\n' || s[k] == '\r') {
          parts.push_back(cur);
          cur.clear();
          if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
        } else {
          cur += s[k];
        }
      }
      if (!cur.empty()) parts.push_back(cur);
      return str_list(parts);
    }
    if (name == "startswith" || name == "endswith") {
      auto b = bind(a, {"prefix"}, name);
      if (!b[0]) fail(name + "() takes at least 1 argument");
      List cands = b[0]->is_list() ? *b[0]->list : List{*b[0]};
      for (const auto& c : cands) {
        const std::string& p = str_arg(&c, name.c_str());
        if (p.size() <= s.size() &&
            (name == "startswith" ? s.compare(0, p.size(), p) == 0
                                  : s.compare(s.size() - p.size(), p.size(), p) == 0))
          return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    if (name == "upper" || name == "lower") {
      bind(a, {}, name);
      return Value::string(map_case(s, name == "upper" ? 1 : 0));
    }
    if (name == "title") {
      bind(a, {}, name);
      return Value::string(py_title(s));
    }
    if (name == "capitalize") {
      bind(a, {}, name);
      return Value::string(py_capitalize(s));
    }
    if (name == "replace") {
      auto b = bind(a, {"old", "new", "count"}, name);
      return check_string(py_replace(s, str_arg(b[0], "replace"), str_arg(b[1], "replace"),
                                     int_arg(b[2], -1, "replace")));
    }
    if (name == "format") return check_string(py_format(s, a));
    if (name == "find" || name == "rfind" || name == "index") {
      auto b = bind(a, {"sub"}, name);
      const std::string& sub = str_arg(b[0], name.c_str());
      const size_t f = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (f == std::string::npos) {
        if (name == "index") fail("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(int64_t(char_count(s.substr(0, f))));
    }
    if (name == "count") {
      auto b = bind(a, {"sub"}, name);
      const std::string& sub = str_arg(b[0], "count");
      if (sub.empty()) return Value::integer(int64_t(char_count(s)) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    }
    if (name == "join") {
      auto b = bind(a, {"iterable"}, name);
      if (!b[0]) fail("join() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const auto& x : iterate(*b[0])) {
        if (!x.is_string())
          fail(fmt::format("sequence item: expected str instance, {} found", type_name(x)));
        if (!first) out += s;
        first = false;
        out += x.s;
        if (out.size() > kMaxOutput) fail("string is too large");
      }
      return Value::string(out);
    }
    // is* predicates
    bind(a, {}, name);
    auto cs = split_chars(s);
    if (cs.empty()) return Value::boolean(false);
    bool all = true, any_cased = false;
    for (const auto& ch : cs) {
      size_t len = 1;
      const uint32_t cp = decode_utf8(ch, 0, len);
      const auto cat = utf8proc_category(int32_t(cp));
      if (name == "isdigit")
        all &= cat == UTF8PROC_CATEGORY_ND;
      else if (name == "isalpha")
        all &= is_cased_letter(cp);
      else if (name == "isalnum")
        all &= is_cased_letter(cp) || cat == UTF8PROC_CATEGORY_ND;
      else if (name == "isspace")
        all &= is_py_space(ch);
      else if (name == "islower" || name == "isupper") {
        if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) {
          any_cased = true;
          if (name == "islower") all = false;
        } else if (cat == UTF8PROC_CATEGORY_LL) {
          any_cased = true;
          if (name == "isupper") all = false;
        }
      }
    }
    if (name == "islower" || name == "isupper") return Value::boolean(all && any_cased);
    return Value::boolean(all);
  }

  Value apply_filter(const std::string& name, const Value& v, CallArgs& a);
  bool apply_test(const std::string& name, const Value& v, CallArgs& a);

  const Program& prog_;
  const Value& ctx_;
  std::vector<std::shared_ptr<Frame>> frames_;
  std::string out_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  std::vector<std::shared_ptr<Dict>> namespaces_;
};

Value Renderer::global(const std::string& name) {
  if (name == "raise_exception")
    return Value::function([](CallArgs& a) -> Value {
      auto b = bind(a, {"message"}, "raise_exception");
      throw TemplateRaised(b[0] ? to_str(*b[0]) : "");
    });
  if (name == "strftime_now")
    return Value::function([](CallArgs& a) -> Value {
      auto b = bind(a, {"format"}, "strftime_now");
      const std::string& f = str_arg(b[0], "strftime_now");
      if (f.size() > 256) fail("strftime_now: format is too long");
      const std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[1024];
      const size_t n = std::strftime(buf, sizeof buf, f.c_str(), &tm);
      return Value::string(std::string(buf, n));
    });
  if (name == "namespace" || name == "dict")
    return Value::function([this, name](CallArgs& a) -> Value {
      Dict d;
      auto put = [&](const std::string& k, const Value& v) {
        if (name == "namespace" && !k.empty() && k[0] == '_')
          fail(
              fmt::format("Chat templates cannot store underscore-prefixed attributes on a "
                          "namespace, but got '{}'. Please rename the attribute.",
                          k));
        for (auto& [dk, dv] : d)
          if (dk == k) {
            dv = v;
            return;
          }
        d.emplace_back(k, v);
      };
      if (a.pos.size() > 1) fail(name + "() expected at most 1 positional argument");
      if (!a.pos.empty()) {
        if (a.pos[0].type == Type::Dict) {
          for (const auto& [k, v] : *a.pos[0].dict) put(k, v);
        } else {
          for (const auto& item : iterate(a.pos[0])) {
            List kv = iterate(item);
            if (kv.size() != 2) fail(name + "(): sequence elements must be pairs");
            put(to_str(kv[0]), kv[1]);
          }
        }
      }
      for (const auto& [k, v] : a.kw) put(k, v);
      Value out = Value::make_dict(std::move(d));
      if (name == "namespace") {
        out.type = Type::Namespace;
        namespaces_.push_back(out.dict);
      }
      return out;
    });
  if (name == "range")
    return Value::function([](CallArgs& a) -> Value {
      if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3)
        fail("range expected 1 to 3 integer arguments");
      int64_t start = 0, stop, step = 1;
      if (a.pos.size() == 1) {
        stop = int_arg(&a.pos[0], 0, "range");
      } else {
        start = int_arg(&a.pos[0], 0, "range");
        stop = int_arg(&a.pos[1], 0, "range");
        if (a.pos.size() == 3) step = int_arg(&a.pos[2], 1, "range");
      }
      if (step == 0) fail("range() arg 3 must not be zero");
      List l;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
        if (int64_t(l.size()) >= kMaxRange)
          fail(fmt::format("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).",
                           kMaxRange));
        l.push_back(Value::integer(k));
      }
      return Value::make_list(std::move(l));
    });
  return Value::undefined();
}

// Jinja's do_title: words start after '-', whitespace or opening brackets.
std::string jinja_title(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (const std::string& ch : split_chars(s)) {
    const bool sep =
        is_py_space(ch) || ch == "-" || ch == "(" || ch == "{" || ch == "[" || ch == "<";
    if (sep) {
      out += ch;
      word_start = true;
    } else {
      out += map_case(ch, word_start ? 1 : 0);
      word_start = false;
    }
  }
  return out;
}

Value Renderer::apply_filter(const std::string& name, const Value& v, CallArgs& a) {
  auto need_str = [&](const Value& x) { return to_str(x); };
  if (name == "trim") {
    auto b = bind(a, {"chars"}, name);
    return Value::string(py_strip(need_str(v), b[0], true, true));
  }
  if (name == "length" || name == "count") {
    bind(a, {}, name);
    switch (v.type) {
      case Type::Undefined:
        return Value::integer(0);
      case Type::String:
        return Value::integer(int64_t(char_count(v.s)));
      case Type::List:
        if (v.lazy) fail("object of type 'generator' has no len()");
        return Value::integer(int64_t(v.list->size()));
      case Type::Dict:
        return Value::integer(int64_t(v.dict->size()));
      default:
        fail(fmt::format("object of type '{}' has no len()", type_name(v)));
    }
  }
  if (name == "upper" || name == "lower") {
    bind(a, {}, name);
    return Value::string(map_case(need_str(v), name == "upper" ? 1 : 0));
  }
  if (name == "title") {
    bind(a, {}, name);
    return Value::string(jinja_title(need_str(v)));
  }
  if (name == "capitalize") {
    bind(a, {}, name);
    return Value::string(py_capitalize(need_str(v)));
  }
  if (name == "tojson") {
    auto b = bind(a, {"ensure_ascii", "indent", "separators", "sort_keys"}, name);
    JsonFormat f;
    if (b[0]) f.ensure_ascii = truthy(*b[0]);
    if (b[1] && !b[1]->is_none()) {
      if (b[1]->is_string())
        f.indent = b[1]->s;
      else
        f.indent =
            std::string(size_t(std::clamp<int64_t>(int_arg(b[1], 0, "tojson indent"), 0, 64)), ' ');
      f.item_sep = ",";
    }
    if (b[2] && !b[2]->is_none()) {
      List seps = iterate(*b[2]);
      if (seps.size() != 2) fail("tojson: separators must be a pair of strings");
      f.item_sep = str_arg(&seps[0], "tojson separators");
      f.key_sep = str_arg(&seps[1], "tojson separators");
    }
    if (b[3]) f.sort_keys = truthy(*b[3]);
    try {
      return check_string(json_dumps(v, f));
    } catch (const ValueError& e) {
      fail(e.what());
    }
  }
  if (name == "string") {
    bind(a, {}, name);
    return Value::string(to_str(v));
  }
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    bind(a, {}, name);
    if (name != "safe") fail("HTML escaping filters are not supported in chat templates");
    return v.is_string() ? v : Value::string(to_str(v));
  }
  if (name == "int") {
    auto b = bind(a, {"default", "base"}, name);
    const Value dflt = b[0] ? *b[0] : Value::integer(0);
    if (is_intlike(v)) return Value::integer(as_int(v));
    if (v.type == Type::Float) {
      if (!std::isfinite(v.f) || std::fabs(v.f) > 9.2e18) return dflt;
      return Value::integer(int64_t(v.f));
    }
    if (v.is_string()) {
      std::string t = py_strip(v.s, nullptr, true, true);
      t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
      try {
        size_t used = 0;
        const long long r = std::stoll(t, &used, int(int_arg(b[1], 10, "int base")));
        if (used == t.size()) return Value::integer(r);
      } catch (...) {
      }
      try {
        size_t used = 0;
        const double d = std::stod(t, &used);
        if (used == t.size() && std::isfinite(d) && std::fabs(d) < 9.2e18)
          return Value::integer(int64_t(d));
      } catch (...) {
      }
    }
    return dflt;
  }
  if (name == "float") {
    auto b = bind(a, {"default"}, name);
    const Value dflt = b[0] ? *b[0] : Value::number(0.0);
    if (v.is_number()) return Value::number(as_double(v));
    if (v.is_string()) {
      std::string t = py_strip(v.s, nullptr, true, true);
      try {
        size_t used = 0;
        const double d = std::stod(t, &used);
        if (used == t.size()) return Value::number(d);
      } catch (...) {
      }
    }
    return dflt;
  }
  if (name == "abs") {
    bind(a, {}, name);
    if (is_intlike(v)) {
      if (as_int(v) == INT64_MIN) fail("integer overflow");
      return Value::integer(std::abs(as_int(v)));
    }
    if (v.type == Type::Float) return Value::number(std::fabs(v.f));
    fail(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
  }
  if (name == "round") {
    auto b = bind(a, {"precision", "method"}, name);
    const int64_t p = std::clamp<int64_t>(int_arg(b[0], 0, "round"), -20, 20);
    const std::string method = b[1] ? str_arg(b[1], "round") : "common";
    if (!v.is_number()) fail(fmt::format("round: expected a number, got {}", type_name(v)));
    const double x = as_double(v), m = std::pow(10.0, double(p));
    double r;
    if (method == "common") {
      r = std::nearbyint(x * m) / m;  // round-half-even like Python's round()
    } else if (method == "ceil") {
      r = std::ceil(x * m) / m;
    } else if (method == "floor") {
      r = std::floor(x * m) / m;
    } else {
      fail("method must be 'common', 'ceil' or 'floor'");
    }
    if (is_intlike(v) && method == "common") return Value::integer(int64_t(r));
    return Value::number(r);
  }
  if (name == "join") {
    auto b = bind(a, {"d", "attribute"}, name);
    const std::string sep = b[0] ? to_str(*b[0]) : "";
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += to_str(b[1] ? attr_path(x, to_str(*b[1])) : x);
      if (out.size() > kMaxOutput) fail("string is too large");
    }
    return Value::string(out);
  }
  if (name == "default" || name == "d") {
    auto b = bind(a, {"default_value", "boolean"}, name);
    const bool boolean = b[1] && truthy(*b[1]);
    if (v.is_undefined() || (boolean && !truthy(v))) return b[0] ? *b[0] : Value::string("");
    return v;
  }
  if (name == "first" || name == "last") {
    bind(a, {}, name);
    if (name == "last" && v.lazy) fail("'generator' object is not reversible");
    List items = iterate(v);
    if (items.empty())
      return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") {
    bind(a, {}, name);
    return check_list(iterate(v));
  }
  if (name == "items") {
    bind(a, {}, name);
    if (v.is_undefined()) return lazy(Value::make_list({}));
    if (v.type != Type::Dict) {
      // jinja2's items() is a generator: the error comes only when it is iterated.
      Value g = lazy(Value::make_list({}));
      g.s = "Can only get item pairs from a mapping.";
      return g;
    }
    CallArgs none;
    return lazy(call_method(v, "items", none));
  }
  if (name == "reverse") {
    bind(a, {}, name);
    if (v.is_string()) {
      auto cs = split_chars(v.s);
      std::string out;
      for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
      return Value::string(out);
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return lazy(Value::make_list(std::move(items)));
  }
  if (name == "replace") {
    auto b = bind(a, {"old", "new", "count"}, name);
    return check_string(py_replace(to_str(v), to_str(b[0] ? *b[0] : Value::string("")),
                                   to_str(b[1] ? *b[1] : Value::string("")),
                                   int_arg(b[2], -1, "replace")));
  }
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    const bool by_attr = name == "selectattr" || name == "rejectattr";
    const bool keep_if = name == "selectattr" || name == "select";
    size_t k = 0;
    std::string attr;
    if (by_attr) {
      if (a.pos.empty()) fail(name + ": missing attribute name");
      attr = to_str(a.pos[k++]);
    }
    std::string test;
    CallArgs targs;
    if (k < a.pos.size()) {
      test = str_arg(&a.pos[k++], name.c_str());
      targs.pos.assign(a.pos.begin() + long(k), a.pos.end());
      targs.kw = a.kw;
    }
    List out;
    if (!iterable_type(v)) return poisoned(v);  // jinja2 fails only when consumed
    for (const auto& x : iterate(v)) {
      const Value item = by_attr ? attr_path(x, attr) : x;
      CallArgs ta = targs;
      const bool r = test.empty() ? truthy(item) : apply_test(test, item, ta);
      if (r == keep_if) out.push_back(x);
    }
    return lazy(Value::make_list(std::move(out)));
  }
  if (name == "map") {
    const Value* attribute = nullptr;
    const Value* dflt = nullptr;
    for (const auto& [n, x] : a.kw) {
      if (n == "attribute")
        attribute = &x;
      else if (n == "default")
        dflt = &x;
    }
    List out;
    if (attribute) {
      if (!iterable_type(v)) return poisoned(v);  // jinja2 fails only when consumed
      for (const auto& x : iterate(v)) {
        Value r = attr_path(x, to_str(*attribute));
        if (r.is_undefined() && dflt) r = *dflt;
        out.push_back(r);
      }
      return lazy(Value::make_list(std::move(out)));
    }
    if (a.pos.empty()) fail("map: a filter name or attribute= is required");
    const std::string filter = str_arg(&a.pos[0], "map");
    CallArgs fargs;
    fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
    fargs.kw = a.kw;
    if (!iterable_type(v)) return poisoned(v);  // jinja2 fails only when consumed
    for (const auto& x : iterate(v)) {
      CallArgs fa = fargs;
      out.push_back(apply_filter(filter, x, fa));
    }
    return lazy(Value::make_list(std::move(out)));
  }
  if (name == "unique") {
    auto b = bind(a, {"case_sensitive", "attribute"}, name);
    const bool cs = b[0] && truthy(*b[0]);
    List out, seen;
    if (!iterable_type(v)) return poisoned(v);  // jinja2 fails only when consumed
    for (const auto& x : iterate(v)) {
      Value key = b[1] ? attr_path(x, to_str(*b[1])) : x;
      if (!cs && key.is_string()) key = Value::string(map_case(key.s, 0));
      bool dup = false;
      for (const auto& s : seen)
        if (py_eq(s, key)) dup = true;
      if (!dup) {
        seen.push_back(key);
        out.push_back(x);
      }
    }
    return lazy(Value::make_list(std::move(out)));
  }
  if (name == "indent") {
    auto b = bind(a, {"width", "first", "blank"}, name);
    std::string ind =
        b[0] && b[0]->is_string()
            ? b[0]->s
            : std::string(size_t(std::clamp<int64_t>(int_arg(b[0], 4, "indent"), 0, 256)), ' ');
    const bool first = b[1] && truthy(*b[1]), blank = b[2] && truthy(*b[2]);
    if (!v.is_string()) {
      if (v.is_undefined()) undefined_error(v);
      fail(fmt::format("unsupported operand type(s) for +=: '{}' and 'str'", type_name(v)));
    }
    std::string s = v.s + "\n";
    CallArgs none;
    List lines = *call_method(Value::string(s), "splitlines", none).list;
    std::string rv;
    if (blank) {
      for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k].s;
    } else {
      rv = lines.empty() ? "" : lines[0].s;
      for (size_t k = 1; k < lines.size(); ++k)
        rv += "\n" + (lines[k].s.empty() ? "" : ind) + lines[k].s;
    }
    if (first) rv = ind + rv;
    return check_string(rv);
  }
  if (name == "sort") {
    auto b = bind(a, {"reverse", "case_sensitive", "attribute"}, name);
    const bool rev = b[0] && truthy(*b[0]), cs = b[1] && truthy(*b[1]);
    List items = iterate(v);
    auto key = [&](const Value& x) {
      Value k = b[2] ? attr_path(x, to_str(*b[2])) : x;
      if (!cs && k.is_string()) k = Value::string(map_case(k.s, 0));
      return k;
    };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return rev ? py_lt(key(y), key(x)) : py_lt(key(x), key(y));
    });
    return Value::make_list(std::move(items));
  }
  if (name == "dictsort") {
    auto b = bind(a, {"case_sensitive", "by", "reverse"}, name);
    if (v.type != Type::Dict) fail("dictsort: expected a mapping");
    const bool cs = b[0] && truthy(*b[0]), by_value = b[1] && to_str(*b[1]) == "value";
    const bool rev = b[2] && truthy(*b[2]);
    CallArgs none;
    List items = *call_method(v, "items", none).list;
    auto key = [&](const Value& x) {
      Value k = (*x.list)[by_value ? 1 : 0];
      if (!cs && k.is_string()) k = Value::string(map_case(k.s, 0));
      return k;
    };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return rev ? py_lt(key(y), key(x)) : py_lt(key(x), key(y));
    });
    return Value::make_list(std::move(items));
  }
  if (name == "sum" || name == "min" || name == "max") {
    List items = iterate(v);
    if (name == "sum") {
      auto b = bind(a, {"attribute", "start"}, name);
      Value acc = b[1] ? *b[1] : Value::integer(0);
      for (const auto& x : items) acc = binary("+", acc, b[0] ? attr_path(x, to_str(*b[0])) : x);
      return acc;
    }
    auto b = bind(a, {"case_sensitive", "attribute"}, name);
    if (items.empty())
      return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    const bool cs = b[0] && truthy(*b[0]);
    auto key = [&](const Value& x) {
      Value k = b[1] ? attr_path(x, to_str(*b[1])) : x;
      if (!cs && k.is_string()) k = Value::string(map_case(k.s, 0));
      return k;
    };
    size_t best = 0;
    for (size_t k = 1; k < items.size(); ++k) {
      const bool better = name == "min" ? py_lt(key(items[k]), key(items[best]))
                                        : py_lt(key(items[best]), key(items[k]));
      if (better) best = k;
    }
    return items[best];
  }
  if (name == "wordcount") {
    bind(a, {}, name);
    int64_t words = 0;  // jinja2 counts runs of \w characters
    bool in_word = false;
    for (const std::string& ch : split_chars(to_str(v))) {
      size_t len = 1;
      const uint32_t cp = decode_utf8(ch, 0, len);
      const auto cat = utf8proc_category(int32_t(cp));
      const bool w = ch == "_" || is_cased_letter(cp) || cat == UTF8PROC_CATEGORY_ND ||
                     cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
      if (w && !in_word) ++words;
      in_word = w;
    }
    return Value::integer(words);
  }
  if (name == "attr") {
    auto b = bind(a, {"name"}, name);
    return get_attr(v, str_arg(b[0], "attr"));
  }
  if (name == "batch" || name == "slice") fail(fmt::format("filter '{}' is not supported", name));
  fail(fmt::format("No filter named '{}'.", name));
}

bool Renderer::apply_test(const std::string& name, const Value& v, CallArgs& a) {
  auto arg1 = [&]() -> const Value& {
    auto b = bind(a, {"other"}, name);
    if (!b[0]) fail(fmt::format("test '{}' needs an argument", name));
    return *b[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.type == Type::Bool;
  if (name == "true") return v.type == Type::Bool && v.b;
  if (name == "false") return v.type == Type::Bool && !v.b;
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.type == Type::Int;
  if (name == "float") return v.type == Type::Float;
  if (name == "mapping") return v.type == Type::Dict;
  if (name == "iterable")
    return v.type == Type::Undefined || v.is_string() || v.is_list() || v.type == Type::Dict;
  if (name == "sequence")
    return v.type == Type::Undefined || v.is_string() || (v.is_list() && !v.lazy) ||
           v.type == Type::Dict;
  if (name == "callable") return v.type == Type::Function;
  if (name == "odd" || name == "even") {
    // jinja2: value % 2 == 1 / value % 2 == 0, so floats work too.
    if (v.type == Type::Float) {
      double r = std::fmod(v.f, 2.0);
      if (r < 0) r += 2.0;
      return name == "odd" ? r == 1.0 : r == 0.0;
    }
    if (!is_intlike(v)) fail(fmt::format("test '{}' needs a number, got {}", name, type_name(v)));
    const bool odd = (as_int(v) % 2) != 0;
    return name == "odd" ? odd : !odd;
  }
  if (name == "divisibleby") {
    const Value& d = arg1();  // jinja2: value % num == 0
    if (!v.is_number() || !d.is_number())
      fail(fmt::format("unsupported operand type(s) for %: '{}' and '{}'", type_name(v),
                       type_name(d)));
    if (as_double(d) == 0) fail("integer division or modulo by zero");
    if (is_intlike(v) && is_intlike(d)) return as_int(d) == -1 || as_int(v) % as_int(d) == 0;
    return std::fmod(as_double(v), as_double(d)) == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return py_eq(v, arg1());
  if (name == "ne" || name == "!=") return !py_eq(v, arg1());
  if (name == "lt" || name == "lessthan" || name == "<") return py_lt(v, arg1());
  if (name == "gt" || name == "greaterthan" || name == ">") return py_lt(arg1(), v);
  if (name == "le" || name == "<=") {
    const Value& o = arg1();
    return py_lt(v, o) || py_eq(v, o);
  }
  if (name == "ge" || name == ">=") {
    const Value& o = arg1();
    return py_lt(o, v) || py_eq(v, o);
  }
  if (name == "in") return contains(arg1(), v);
  if (name == "sameas") {
    const Value& o = arg1();
    if (v.type != o.type) return false;
    switch (v.type) {
      case Type::None:
      case Type::Undefined:
        return true;
      case Type::Bool:
        return v.b == o.b;
      case Type::Int:
        return v.i == o.i && v.i >= -5 && v.i <= 256;
      case Type::List:
        return v.list == o.list;
      case Type::Dict:
      case Type::Namespace:
        return v.dict == o.dict;
      default:
        return false;
    }
  }
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    CallArgs none;
    return truthy(call_method(v, name == "lower" ? "islower" : "isupper", none));
  }
  fail(fmt::format("No test named '{}'.", name));
}

}  // namespace

std::string render(const Program& prog, const Value& context) {
  Renderer r(prog, context);
  try {
    return r.run();
  } catch (const RenderError& e) {
    throw ValueError("chat template: " + e.msg);
  }
}

}  // namespace lmf::tok::jinja
