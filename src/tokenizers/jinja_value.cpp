// Values of the Jinja subset: construction, JSON conversion, Python str()/repr() and
// json.dumps() formatting (as transformers' `tojson` filter calls it).
#include <algorithm>
#include <charconv>
#include <cmath>

#include "lmforge/core/error.h"
#include "tokenizers/jinja_util.h"

namespace lmf::tok::jinja {

Value Value::undefined(std::string hint) {
  Value v;
  v.s = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.type = Type::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.type = Type::Bool;
  v.b = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.type = Type::Int;
  v.i = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.type = Type::Float;
  v.f = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.type = Type::String;
  v.s = std::move(s);
  return v;
}
namespace {
constexpr uint16_t kMaxValueDepth = 512;
uint16_t child_depth(const Value& x) {
  return x.type == Value::Type::Namespace ? 1 : x.depth;
}
uint16_t checked_depth(uint16_t max_child) {
  if (max_child >= kMaxValueDepth)
    throw ValueError("chat template: a list or dict nests deeper than 512 levels");
  return uint16_t(max_child + 1);
}
}  // namespace

Value Value::make_list(List l, bool is_tuple) {
  Value v;
  v.type = Type::List;
  v.tuple = is_tuple;
  uint16_t d = 0;
  for (const auto& x : l) d = std::max(d, child_depth(x));
  v.depth = checked_depth(d);
  v.list = std::make_shared<List>(std::move(l));
  return v;
}
Value Value::make_dict(Dict dict) {
  Value v;
  v.type = Type::Dict;
  uint16_t d = 0;
  for (const auto& kv : dict) d = std::max(d, child_depth(kv.second));
  v.depth = checked_depth(d);
  v.dict = std::make_shared<Dict>(std::move(dict));
  return v;
}
Value Value::function(Function f) {
  Value v;
  v.type = Type::Function;
  v.fn = std::make_shared<Function>(std::move(f));
  return v;
}

const Value* Value::find(const std::string& key) const {
  if ((type != Type::Dict && type != Type::Namespace) || !dict) return nullptr;
  for (const auto& [k, v] : *dict)
    if (k == key) return &v;
  return nullptr;
}

Value from_json(const nlohmann::ordered_json& j, int depth) {
  LMF_CHECK(depth < 512, ValueError, "chat template: input JSON nests deeper than 512 levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return Value::number(double(u));
      return Value::integer(int64_t(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      l.reserve(j.size());
      for (const auto& x : j) l.push_back(from_json(x, depth + 1));
      return Value::make_list(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      d.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.emplace_back(it.key(), from_json(it.value(), depth + 1));
      return Value::make_dict(std::move(d));
    }
    default:
      return Value::string("<binary>");
  }
}

std::string type_name(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined:
      return "Undefined";
    case Value::Type::None:
      return "NoneType";
    case Value::Type::Bool:
      return "bool";
    case Value::Type::Int:
      return "int";
    case Value::Type::Float:
      return "float";
    case Value::Type::String:
      return "str";
    case Value::Type::List:
      return v.lazy ? "generator" : v.tuple ? "tuple" : "list";
    case Value::Type::Dict:
      return "dict";
    case Value::Type::Namespace:
      return "Namespace";
    case Value::Type::Function:
      return "function";
  }
  return "object";
}

std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  // sci: [-]d[.ddd]e[+-]xx
  const bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  const size_t epos = sci.find('e');
  std::string digits = sci.substr(0, epos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp = std::stoi(sci.substr(epos + 1));
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    out += exp < 0 ? "e-" : "e+";
    const std::string e = std::to_string(std::abs(exp));
    if (e.size() < 2) out += '0';
    out += e;
  } else if (exp < 0) {
    out = "0." + std::string(size_t(-exp - 1), '0') + digits;
  } else {
    const size_t int_len = size_t(exp) + 1;
    if (digits.size() <= int_len) {
      out = digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return neg ? "-" + out : out;
}

std::string str_repr(const std::string& s) {
  const bool has_sq = s.find('\'') != std::string::npos;
  const bool has_dq = s.find('"') != std::string::npos;
  const char q = has_sq && !has_dq ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == q || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  out += q;
  return out;
}

namespace {
void repr_into(const Value& v, std::string& out, int depth);

void repr_into(const Value& v, std::string& out, int depth) {
  LMF_CHECK(depth < 256, ValueError, "chat template: value nests too deeply to print");
  switch (v.type) {
    case Value::Type::Undefined:
      out += depth == 0 ? "" : "Undefined";
      return;
    case Value::Type::None:
      out += "None";
      return;
    case Value::Type::Bool:
      out += v.b ? "True" : "False";
      return;
    case Value::Type::Int:
      out += std::to_string(v.i);
      return;
    case Value::Type::Float:
      out += float_repr(v.f);
      return;
    case Value::Type::String:
      out += depth == 0 ? v.s : str_repr(v.s);
      return;
    case Value::Type::List: {
      if (v.lazy) {
        out += "<generator object>";
        return;
      }
      out += v.tuple ? '(' : '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        repr_into((*v.list)[k], out, depth + 1);
      }
      if (v.tuple && v.list->size() == 1) out += ',';
      out += v.tuple ? ')' : ']';
      return;
    }
    case Value::Type::Dict:
    case Value::Type::Namespace: {
      if (v.type == Value::Type::Namespace) out += "<Namespace ";
      out += '{';
      bool first = true;
      for (const auto& [k, x] : *v.dict) {
        if (!first) out += ", ";
        first = false;
        out += str_repr(k);
        out += ": ";
        repr_into(x, out, depth + 1);
      }
      out += '}';
      if (v.type == Value::Type::Namespace) out += '>';
      return;
    }
    case Value::Type::Function:
      out += "<function>";
      return;
  }
}
}  // namespace

std::string to_str(const Value& v) {
  if (v.type == Value::Type::String) return v.s;
  std::string out;
  repr_into(v, out, 0);
  return out;
}

std::string to_repr(const Value& v) {
  std::string out;
  if (v.type == Value::Type::String) return str_repr(v.s);
  if (v.type == Value::Type::Undefined) return "Undefined";
  repr_into(v, out, 0);
  return out;
}

namespace {
void json_string(const std::string& s, bool ensure_ascii, std::string& out) {
  out += '"';
  for (size_t k = 0; k < s.size(); ++k) {
    const unsigned char c = static_cast<unsigned char>(s[k]);
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
      out += fmt::format("\\u{:04x}", c);
    } else if (ensure_ascii && c >= 0x80) {
      size_t len = 1;
      const uint32_t cp = decode_utf8(s, k, len);
      if (cp >= 0x10000) {
        const uint32_t u = cp - 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (u >> 10), 0xDC00 + (u & 0x3FF));
      } else {
        out += fmt::format("\\u{:04x}", cp);
      }
      k += len - 1;
    } else {
      out += char(c);
    }
  }
  out += '"';
}

void dumps_into(const Value& v, const JsonFormat& f, int level, std::string& out) {
  LMF_CHECK(level < 256, ValueError, "chat template: tojson: value nests too deeply");
  auto newline = [&](int lvl) {
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += *f.indent;
  };
  switch (v.type) {
    case Value::Type::None:
      out += "null";
      return;
    case Value::Type::Bool:
      out += v.b ? "true" : "false";
      return;
    case Value::Type::Int:
      out += std::to_string(v.i);
      return;
    case Value::Type::Float:
      if (std::isnan(v.f))
        out += "NaN";
      else if (std::isinf(v.f))
        out += v.f > 0 ? "Infinity" : "-Infinity";
      else
        out += float_repr(v.f);
      return;
    case Value::Type::String:
      json_string(v.s, f.ensure_ascii, out);
      return;
    case Value::Type::List: {
      if (v.lazy) throw ValueError("Object of type generator is not JSON serializable");
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += f.item_sep;
        if (f.indent) newline(level + 1);
        dumps_into((*v.list)[k], f, level + 1, out);
      }
      if (f.indent) newline(level);
      out += ']';
      return;
    }
    case Value::Type::Dict: {
      if (v.dict->empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : *v.dict) items.push_back(&kv);
      if (f.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += f.item_sep;
        if (f.indent) newline(level + 1);
        json_string(items[k]->first, f.ensure_ascii, out);
        out += f.key_sep;
        dumps_into(items[k]->second, f, level + 1, out);
      }
      if (f.indent) newline(level);
      out += '}';
      return;
    }
    default:
      throw ValueError(fmt::format("Object of type {} is not JSON serializable", type_name(v)));
  }
}
}  // namespace

std::string json_dumps(const Value& v, const JsonFormat& f) {
  std::string out;
  dumps_into(v, f, 0, out);
  return out;
}

uint32_t decode_utf8(const std::string& s, size_t pos, size_t& len) {
  const unsigned char c = static_cast<unsigned char>(s[pos]);
  int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (n < 0 || pos + size_t(n) >= s.size() + (n == 0 ? 1 : 0)) {
    len = 1;
    return n == 0 ? c : 0xFFFD;
  }
  uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1F) : n == 2 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k <= n; ++k) {
    const unsigned char d = static_cast<unsigned char>(s[pos + size_t(k)]);
    if ((d & 0xC0) != 0x80) {
      len = 1;
      return 0xFFFD;
    }
    cp = (cp << 6) | (d & 0x3F);
  }
  len = size_t(n) + 1;
  return cp;
}

std::vector<std::string> split_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t k = 0; k < s.size();) {
    size_t len = 1;
    decode_utf8(s, k, len);
    out.push_back(s.substr(k, len));
    k += len;
  }
  return out;
}

}  // namespace lmf::tok::jinja
