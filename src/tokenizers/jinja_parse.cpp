// Lexer and parser of the Jinja2 subset used by chat templates, with jinja2's whitespace rules
// for trim_blocks=True, lstrip_blocks=True and `-`/`+` markers.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>

#include "lmforge/core/error.h"
#include "tokenizers/jinja.h"

namespace lmf::tok::jinja {
namespace {

constexpr int kMaxDepth = 200;  // nesting of expressions and blocks

enum class TT { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Tok {
  TT type;
  std::string s;  // text, name, operator, decoded string
  int64_t i = 0;
  double f = 0;
  int line = 1, col = 1;
};

[[noreturn]] void syntax_error(int line, int col, const std::string& msg) {
  throw ValueError(fmt::format("chat template: line {}, column {}: {}", line, col, msg));
}

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_name_start(unsigned char c) {
  return std::isalpha(c) || c == '_' || c >= 0x80;
}
bool is_name_char(unsigned char c) {
  return std::isalnum(c) || c == '_' || c >= 0x80;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding of a string literal's body (unknown escapes stay as-is).
std::string decode_escapes(std::string_view body) {
  std::string out;
  for (size_t k = 0; k < body.size(); ++k) {
    char c = body[k];
    if (c != '\\' || k + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++k];
    switch (e) {
      case '\n':
        break;
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        bool ok = k + n < body.size();
        for (size_t d = 1; ok && d <= n; ++d) {
          const int h = hexval(body[k + d]);
          if (h < 0)
            ok = false;
          else
            cp = cp * 16 + uint32_t(h);
        }
        if (!ok)
          throw ValueError("chat template: truncated \\" + std::string(1, e) +
                           " escape in a string");
        append_utf8(out, cp);
        k += n;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = uint32_t(e - '0');
          for (int d = 0; d < 2 && k + 1 < body.size() && body[k + 1] >= '0' && body[k + 1] <= '7';
               ++d)
            cp = cp * 8 + uint32_t(body[++k] - '0');
          append_utf8(out, cp);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {
    line_starts_.push_back(0);
    for (size_t k = 0; k < src_.size(); ++k)
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
  }

  std::vector<Tok> run() {
    const size_t n = src_.size();
    size_t pos = 0;
    bool line_starting = true;
    while (pos < n) {
      size_t start = pos;
      while (true) {
        start = src_.find('{', start);
        if (start == std::string::npos || start + 1 >= n) {
          start = std::string::npos;
          break;
        }
        const char k = src_[start + 1];
        if (k == '{' || k == '%' || k == '#') break;
        ++start;
      }
      if (start == std::string::npos) {
        push(TT::Text, src_.substr(pos), pos);
        break;
      }
      std::string text = src_.substr(pos, start - pos);
      const char kind = src_[start + 1];
      size_t p = start + 2;
      char sign = 0;
      if (p < n && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      if (sign == '-') {
        while (!text.empty() && is_ws(text.back())) text.pop_back();
      } else if (sign != '+' && kind != '{') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
            std::all_of(text.begin() + long(l_pos), text.end(), is_ws))
          text.resize(l_pos);
      }
      if (!text.empty()) push(TT::Text, text, pos);
      if (kind == '#') {
        size_t e = src_.find("#}", p);
        if (e == std::string::npos) err(start, "missing end of comment tag '#}'");
        const bool minus = e > p && src_[e - 1] == '-';
        const bool plus = e > p && src_[e - 1] == '+';
        size_t q = e + 2;
        if (minus) {
          while (q < n && is_ws(src_[q])) ++q;
        } else if (!plus && q < n && src_[q] == '\n') {
          ++q;
        }
        line_starting = src_[q - 1] == '\n';
        pos = q;
        continue;
      }
      if (kind == '%' && lex_raw(start, p, pos, line_starting)) continue;
      push(kind == '{' ? TT::VarBegin : TT::BlockBegin, "", start);
      pos = lex_tag(kind, p, line_starting);
    }
    push(TT::Eof, "", n);
    return std::move(toks_);
  }

 private:
  void where(size_t off, int& line, int& col) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), off);
    const size_t li = size_t(it - line_starts_.begin()) - 1;
    line = int(li + 1);
    col = int(off - line_starts_[li] + 1);
  }
  [[noreturn]] void err(size_t off, const std::string& msg) const {
    int l, c;
    where(off, l, c);
    syntax_error(l, c, msg);
  }
  void push(TT t, std::string s, size_t off) {
    Tok tok{t, std::move(s)};
    where(off, tok.line, tok.col);
    toks_.push_back(std::move(tok));
  }

  // `{% raw %}...{% endraw %}`: the body is text, untouched.
  bool lex_raw(size_t start, size_t p, size_t& pos, bool& line_starting) {
    const size_t n = src_.size();
    size_t q = p;
    while (q < n && is_ws(src_[q])) ++q;
    if (src_.compare(q, 3, "raw") != 0 || (q + 3 < n && is_name_char(src_[q + 3]))) return false;
    q += 3;
    while (q < n && is_ws(src_[q])) ++q;
    if (src_.compare(q, 3, "-%}") == 0) {
      q += 3;
      while (q < n && is_ws(src_[q])) ++q;
    } else if (src_.compare(q, 2, "%}") == 0) {
      q += 2;
    } else {
      return false;
    }
    size_t body_start = q;
    for (size_t s = src_.find("{%", q); s != std::string::npos; s = src_.find("{%", s + 2)) {
      size_t r = s + 2;
      char sign = 0;
      if (r < n && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
      while (r < n && is_ws(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") != 0) continue;
      r += 6;
      while (r < n && is_ws(src_[r])) ++r;
      std::string body = src_.substr(body_start, s - body_start);
      if (sign == '-')
        while (!body.empty() && is_ws(body.back())) body.pop_back();
      if (src_.compare(r, 3, "-%}") == 0) {
        r += 3;
        while (r < n && is_ws(src_[r])) ++r;
      } else if (src_.compare(r, 3, "+%}") == 0) {
        r += 3;
      } else if (src_.compare(r, 2, "%}") == 0) {
        r += 2;
        if (r < n && src_[r] == '\n') ++r;
      } else {
        continue;
      }
      if (!body.empty()) push(TT::Text, body, body_start);
      line_starting = src_[r - 1] == '\n';
      pos = r;
      return true;
    }
    err(start, "missing '{% endraw %}' for this raw block");
  }

  size_t lex_tag(char kind, size_t p, bool& line_starting) {
    const size_t n = src_.size();
    std::vector<char> balance;
    const TT end_type = kind == '{' ? TT::VarEnd : TT::BlockEnd;
    const char* close = kind == '{' ? "}}" : "%}";
    while (true) {
      while (p < n && is_ws(src_[p])) ++p;
      if (p >= n) err(p, std::string("unexpected end of template, expected '") + close + "'");
      if (balance.empty()) {
        if (src_[p] == '-' && src_.compare(p + 1, 2, close) == 0) {
          push(end_type, "", p);
          size_t q = p + 3;
          while (q < n && is_ws(src_[q])) ++q;
          line_starting = src_[q - 1] == '\n';
          return q;
        }
        if (kind == '%' && src_[p] == '+' && src_.compare(p + 1, 2, close) == 0) {
          push(end_type, "", p);
          line_starting = false;
          return p + 3;
        }
        if (src_.compare(p, 2, close) == 0) {
          push(end_type, "", p);
          size_t q = p + 2;
          if (kind == '%' && q < n && src_[q] == '\n') ++q;
          line_starting = src_[q - 1] == '\n';
          return q;
        }
      }
      const char c = src_[p];
      if (is_name_start(static_cast<unsigned char>(c))) {
        size_t q = p;
        while (q < n && is_name_char(static_cast<unsigned char>(src_[q]))) ++q;
        push(TT::Name, src_.substr(p, q - p), p);
        p = q;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        p = lex_number(p);
      } else if (c == '\'' || c == '"') {
        size_t q = p + 1;
        while (q < n && src_[q] != c) q += src_[q] == '\\' ? 2 : 1;
        if (q >= n) err(p, "unterminated string literal");
        push(TT::String, decode_escapes(std::string_view(src_).substr(p + 1, q - p - 1)), p);
        p = q + 1;
      } else {
        static const char* ops2[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (const char* o : ops2)
          if (src_.compare(p, 2, o) == 0) op = o;
        if (op.empty()) {
          if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos)
            err(p, fmt::format("unexpected character '{}'", c));
          op = std::string(1, c);
          if (c == '(' || c == '[' || c == '{') {
            balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
          } else if (c == ')' || c == ']' || c == '}') {
            if (balance.empty() || balance.back() != c) err(p, fmt::format("unexpected '{}'", c));
            balance.pop_back();
          }
        }
        push(TT::Op, op, p);
        p += op.size();
      }
    }
  }

  size_t lex_number(size_t p) {
    const size_t n = src_.size();
    auto digits = [&](size_t q) {
      while (q < n && (std::isdigit(static_cast<unsigned char>(src_[q])) ||
                       (src_[q] == '_' && q + 1 < n &&
                        std::isdigit(static_cast<unsigned char>(src_[q + 1])))))
        ++q;
      return q;
    };
    size_t q = digits(p);
    bool is_float = false;
    const bool after_dot = !toks_.empty() && toks_.back().type == TT::Op && toks_.back().s == ".";
    if (!after_dot && q + 1 < n && src_[q] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
      q = digits(q + 1);
      is_float = true;
    }
    if (!after_dot && q < n && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < n && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < n && std::isdigit(static_cast<unsigned char>(src_[r]))) {
        q = digits(r);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = p; k < q; ++k)
      if (src_[k] != '_') text += src_[k];
    if (is_float) {
      double v = 0;
      auto r = std::from_chars(text.data(), text.data() + text.size(), v);
      if (r.ec == std::errc::result_out_of_range) v = HUGE_VAL;
      push(TT::Float, text, p);
      toks_.back().f = v;
    } else {
      int64_t v = 0;
      auto r = std::from_chars(text.data(), text.data() + text.size(), v);
      if (r.ec != std::errc()) err(p, "integer literal out of range");
      push(TT::Int, text, p);
      toks_.back().i = v;
    }
    return q;
  }

  const std::string& src_;
  std::vector<size_t> line_starts_;
  std::vector<Tok> toks_;
};

class Parser {
 public:
  explicit Parser(std::vector<Tok> toks) : t_(std::move(toks)) {}

  Body parse_template() {
    std::string found;
    Body body = parse_body({}, found);
    return body;
  }

 private:
  const Tok& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Tok& next() {
    const Tok& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  bool is_op(const char* op, size_t k = 0) const {
    return peek(k).type == TT::Op && peek(k).s == op;
  }
  bool is_name(const char* name, size_t k = 0) const {
    return peek(k).type == TT::Name && peek(k).s == name;
  }
  [[noreturn]] void fail_at(const Tok& t, const std::string& msg) const {
    syntax_error(t.line, t.col, msg);
  }
  static std::string describe(const Tok& t) {
    switch (t.type) {
      case TT::Text:
        return "template text";
      case TT::VarBegin:
        return "'{{'";
      case TT::VarEnd:
        return "end of print statement";
      case TT::BlockBegin:
        return "'{%'";
      case TT::BlockEnd:
        return "end of statement block";
      case TT::Name:
        return "'" + t.s + "'";
      case TT::String:
        return "string literal";
      case TT::Int:
      case TT::Float:
        return "number " + t.s;
      case TT::Op:
        return "'" + t.s + "'";
      case TT::Eof:
        return "end of template";
    }
    return "token";
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail_at(peek(), fmt::format("expected '{}', got {}", op, describe(peek())));
    next();
  }
  void expect_name(const char* name) {
    if (!is_name(name))
      fail_at(peek(), fmt::format("expected '{}', got {}", name, describe(peek())));
    next();
  }
  void expect_block_end() {
    if (peek().type != TT::BlockEnd)
      fail_at(peek(), fmt::format("expected end of statement block, got {}", describe(peek())));
    next();
  }
  std::string expect_ident() {
    if (peek().type != TT::Name)
      fail_at(peek(), fmt::format("expected a name, got {}", describe(peek())));
    return next().s;
  }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser, const Tok& at) : p(parser) {
      if (++p.depth_ > kMaxDepth) syntax_error(at.line, at.col, "template nests too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  ExprP make(EK k, const Tok& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }
  NodeP make_node(NK k, const Tok& at) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = at.line;
    n->col = at.col;
    return n;
  }

  // Parses nodes until `{% name` with name in `ends` (consumed; the rest of that tag is not).
  Body parse_body(const std::vector<std::string>& ends, std::string& found) {
    DepthGuard g(*this, peek());
    Body body;
    while (true) {
      const Tok& t = peek();
      if (t.type == TT::Eof) {
        if (!ends.empty()) {
          std::string want;
          for (const auto& e : ends) want += (want.empty() ? "'" : " or '") + e + "'";
          fail_at(t, "unexpected end of template, expected " + want);
        }
        return body;
      }
      if (t.type == TT::Text) {
        auto n = make_node(NK::Text, t);
        n->text = next().s;
        body.push_back(std::move(n));
      } else if (t.type == TT::VarBegin) {
        next();
        auto n = make_node(NK::Output, t);
        n->expr = parse_tuple(true);
        if (peek().type != TT::VarEnd)
          fail_at(peek(), fmt::format("expected end of print statement, got {}", describe(peek())));
        next();
        body.push_back(std::move(n));
      } else if (t.type == TT::BlockBegin) {
        next();
        const Tok& nt = peek();
        if (nt.type != TT::Name) fail_at(nt, "expected a statement name after '{%'");
        if (std::find(ends.begin(), ends.end(), nt.s) != ends.end()) {
          found = next().s;
          return body;
        }
        body.push_back(parse_statement());
      } else {
        fail_at(t, fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  NodeP parse_statement() {
    const Tok& t = next();
    const std::string& kw = t.s;
    if (kw == "if") return parse_if(t);
    if (kw == "for") return parse_for(t);
    if (kw == "set") return parse_set(t);
    if (kw == "macro") return parse_macro(t);
    if (kw == "generation") {
      auto n = make_node(NK::Generation, t);
      expect_block_end();
      std::string found;
      n->body = parse_body({"endgeneration"}, found);
      expect_block_end();
      return n;
    }
    if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) fail_at(t, fmt::format("'{}' outside of a loop", kw));
      auto n = make_node(kw == "break" ? NK::Break : NK::Continue, t);
      expect_block_end();
      return n;
    }
    fail_at(t, fmt::format("unknown or unsupported tag '{}'", kw));
  }

  NodeP parse_if(const Tok& t) {
    auto n = make_node(NK::If, t);
    ExprP cond = parse_tuple(false);
    expect_block_end();
    while (true) {
      std::string found;
      Body body = parse_body({"elif", "else", "endif"}, found);
      n->branches.emplace_back(std::move(cond), std::move(body));
      if (found == "elif") {
        cond = parse_tuple(false);
        expect_block_end();
      } else if (found == "else") {
        expect_block_end();
        Body eb = parse_body({"endif"}, found);
        n->branches.emplace_back(nullptr, std::move(eb));
        expect_block_end();
        return n;
      } else {
        expect_block_end();
        return n;
      }
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool paren = is_op("(");
    if (paren) next();
    names.push_back(expect_ident());
    while (is_op(",")) {
      next();
      if (peek().type != TT::Name || is_name("in")) break;
      names.push_back(expect_ident());
    }
    if (paren) expect_op(")");
    return names;
  }

  NodeP parse_for(const Tok& t) {
    auto n = make_node(NK::For, t);
    n->targets = parse_targets();
    expect_name("in");
    n->expr = parse_tuple(false, /*stop_at_if=*/true);
    if (is_name("if")) {
      next();
      n->filter = parse_expression(true);
    }
    if (is_name("recursive")) fail_at(peek(), "recursive for loops are not supported");
    expect_block_end();
    std::string found;
    ++loop_depth_;
    n->body = parse_body({"endfor", "else"}, found);
    --loop_depth_;
    if (found == "else") {
      expect_block_end();
      n->else_body = parse_body({"endfor"}, found);
    }
    expect_block_end();
    return n;
  }

  NodeP parse_set(const Tok& t) {
    auto n = make_node(NK::Set, t);
    n->targets.push_back(expect_ident());
    if (is_op(".")) {
      next();
      n->text = expect_ident();
    } else {
      while (is_op(",")) {
        next();
        if (is_op("=")) break;
        n->targets.push_back(expect_ident());
      }
    }
    if (peek().type == TT::BlockEnd && n->targets.size() == 1 && n->text.empty()) {
      next();
      n->kind = NK::SetBlock;
      std::string found;
      n->body = parse_body({"endset"}, found);
      expect_block_end();
      return n;
    }
    expect_op("=");
    n->expr = parse_tuple(true);
    expect_block_end();
    return n;
  }

  NodeP parse_macro(const Tok& t) {
    auto n = make_node(NK::Macro, t);
    n->text = expect_ident();
    expect_op("(");
    while (!is_op(")")) {
      if (!n->params.empty()) expect_op(",");
      if (is_op(")")) break;
      n->params.push_back(expect_ident());
      if (is_op("=")) {
        next();
        n->defaults.push_back(parse_expression(true));
      } else if (!n->defaults.empty()) {
        fail_at(peek(), "non-default macro argument follows default argument");
      }
    }
    next();
    expect_block_end();
    std::string found;
    const int saved = loop_depth_;
    loop_depth_ = 0;
    n->body = parse_body({"endmacro"}, found);
    loop_depth_ = saved;
    if (peek().type == TT::Name && peek().s == n->text) next();
    expect_block_end();
    return n;
  }

  // ---- expressions ----
  bool at_expr_end() const {
    const Tok& t = peek();
    return t.type == TT::VarEnd || t.type == TT::BlockEnd || t.type == TT::Eof || is_op(")") ||
           is_op("]") || is_op("}") || is_op(":") || is_op("=");
  }

  ExprP parse_tuple(bool with_condexpr, bool stop_at_if = false, bool explicit_parens = false) {
    const Tok& start = peek();
    std::vector<ExprP> items;
    bool saw_comma = false;
    while (true) {
      if (!items.empty()) {
        if (!is_op(",")) break;
        next();
        saw_comma = true;
      }
      if (at_expr_end() || (stop_at_if && is_name("if"))) break;
      items.push_back(parse_expression(with_condexpr));
    }
    if (!saw_comma) {
      if (items.empty()) {
        if (explicit_parens) return make(EK::Tuple, start);
        fail_at(peek(), fmt::format("expected an expression, got {}", describe(peek())));
      }
      return std::move(items[0]);
    }
    auto e = make(EK::Tuple, start);
    e->items = std::move(items);
    return e;
  }

  ExprP parse_expression(bool with_condexpr) {
    DepthGuard g(*this, peek());
    ExprP e = parse_or();
    if (!with_condexpr) return e;
    while (is_name("if")) {
      const Tok& t = next();
      auto c = make(EK::Cond, t);
      c->b = parse_or();
      if (is_name("else")) {
        next();
        c->c = parse_expression(true);
      }
      c->a = std::move(e);
      e = std::move(c);
    }
    return e;
  }

  ExprP parse_or() {
    ExprP e = parse_and();
    while (is_name("or")) {
      auto o = make(EK::Or, next());
      o->a = std::move(e);
      o->b = parse_and();
      e = std::move(o);
    }
    return e;
  }
  ExprP parse_and() {
    ExprP e = parse_not();
    while (is_name("and")) {
      auto o = make(EK::And, next());
      o->a = std::move(e);
      o->b = parse_not();
      e = std::move(o);
    }
    return e;
  }
  ExprP parse_not() {
    if (is_name("not")) {
      DepthGuard g(*this, peek());
      auto o = make(EK::Not, next());
      o->a = parse_not();
      return o;
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    const Tok& start = peek();
    ExprP e = parse_math1();
    ExprP cmp;
    while (true) {
      std::string op;
      if (peek().type == TT::Op && (peek().s == "==" || peek().s == "!=" || peek().s == "<" ||
                                    peek().s == ">" || peek().s == "<=" || peek().s == ">=")) {
        op = next().s;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(EK::Compare, start);
        cmp->a = std::move(e);
      }
      cmp->kwargs.emplace_back(op, parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(e);
  }
  ExprP binary(const Tok& t, const std::string& op, ExprP l, ExprP r) {
    auto o = make(EK::Binary, t);
    o->name = op;
    o->a = std::move(l);
    o->b = std::move(r);
    return o;
  }
  ExprP parse_math1() {
    ExprP e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Tok& t = next();
      e = binary(t, t.s, std::move(e), parse_concat());
    }
    return e;
  }
  ExprP parse_concat() {
    ExprP e = parse_math2();
    while (is_op("~")) {
      const Tok& t = next();
      auto c = make(EK::Concat, t);
      c->a = std::move(e);
      c->b = parse_math2();
      e = std::move(c);
    }
    return e;
  }
  ExprP parse_math2() {
    ExprP e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Tok& t = next();
      e = binary(t, t.s, std::move(e), parse_pow());
    }
    return e;
  }
  ExprP parse_pow() {
    ExprP e = parse_unary(true);
    while (is_op("**")) {
      const Tok& t = next();
      e = binary(t, "**", std::move(e), parse_unary(true));
    }
    return e;
  }
  ExprP parse_unary(bool with_filter) {
    DepthGuard g(*this, peek());
    ExprP e;
    if (is_op("-") || is_op("+")) {
      const Tok& t = next();
      e = make(t.s == "-" ? EK::Neg : EK::Pos, t);
      e->a = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprP parse_primary() {
    const Tok& t = peek();
    if (t.type == TT::Name) {
      next();
      auto e = make(EK::Literal, t);
      if (t.s == "true" || t.s == "True")
        e->lit = Value::boolean(true);
      else if (t.s == "false" || t.s == "False")
        e->lit = Value::boolean(false);
      else if (t.s == "none" || t.s == "None")
        e->lit = Value::none();
      else {
        e->kind = EK::Name;
        e->name = t.s;
      }
      return e;
    }
    if (t.type == TT::String) {
      std::string s;
      while (peek().type == TT::String) s += next().s;
      auto e = make(EK::Literal, t);
      e->lit = Value::string(std::move(s));
      return e;
    }
    if (t.type == TT::Int || t.type == TT::Float) {
      next();
      auto e = make(EK::Literal, t);
      e->lit = t.type == TT::Int ? Value::integer(t.i) : Value::number(t.f);
      return e;
    }
    if (is_op("(")) {
      next();
      ExprP e = parse_tuple(true, false, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      auto e = make(EK::List, next());
      while (!is_op("]")) {
        if (!e->items.empty()) {
          expect_op(",");
          if (is_op("]")) break;
        }
        e->items.push_back(parse_expression(true));
      }
      next();
      return e;
    }
    if (is_op("{")) {
      auto e = make(EK::Dict, next());
      while (!is_op("}")) {
        if (!e->items.empty()) {
          expect_op(",");
          if (is_op("}")) break;
        }
        e->items.push_back(parse_expression(true));
        expect_op(":");
        e->items.push_back(parse_expression(true));
      }
      next();
      return e;
    }
    fail_at(t, fmt::format("unexpected {}", describe(t)));
  }

  ExprP parse_postfix(ExprP e) {
    while (true) {
      if (is_op(".")) {
        const Tok& t = next();
        if (peek().type == TT::Name) {
          auto g = make(EK::GetAttr, t);
          g->name = next().s;
          g->a = std::move(e);
          e = std::move(g);
        } else if (peek().type == TT::Int) {
          auto g = make(EK::GetItem, t);
          g->b = make(EK::Literal, peek());
          g->b->lit = Value::integer(next().i);
          g->a = std::move(e);
          e = std::move(g);
        } else {
          fail_at(peek(),
                  fmt::format("expected an attribute name after '.', got {}", describe(peek())));
        }
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprP parse_subscript(ExprP obj) {
    const Tok& t = next();  // [
    ExprP parts[3];
    bool slice = false;
    int k = 0;
    while (!is_op("]")) {
      if (is_op(":")) {
        next();
        slice = true;
        if (++k > 2) fail_at(peek(), "too many ':' in a slice");
        continue;
      }
      if (parts[k]) fail_at(peek(), fmt::format("unexpected {} in a subscript", describe(peek())));
      parts[k] = parse_expression(true);
      if (!slice && is_op(",")) fail_at(peek(), "tuple subscripts are not supported");
    }
    next();
    if (!slice) {
      if (!parts[0]) fail_at(t, "empty subscript");
      auto g = make(EK::GetItem, t);
      g->a = std::move(obj);
      g->b = std::move(parts[0]);
      return g;
    }
    auto s = make(EK::Slice, t);
    s->a = std::move(obj);
    s->items.resize(3);
    for (int j = 0; j < 3; ++j) s->items[size_t(j)] = std::move(parts[j]);
    return s;
  }

  void parse_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (!e.items.empty() || !e.kwargs.empty()) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail_at(peek(), "*args and **kwargs are not supported");
      if (peek().type == TT::Name && is_op("=", 1)) {
        std::string name = next().s;
        next();
        e.kwargs.emplace_back(std::move(name), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail_at(peek(), "positional argument follows keyword argument");
        e.items.push_back(parse_expression(true));
      }
    }
    next();
  }

  ExprP parse_call(ExprP fn) {
    auto c = make(EK::Call, peek());
    c->a = std::move(fn);
    parse_args(*c);
    return c;
  }

  ExprP parse_filter_expr(ExprP e) {
    while (true) {
      if (is_op("|")) {
        const Tok& t = next();
        auto f = make(EK::Filter, t);
        f->name = expect_ident();
        while (is_op(".")) {
          next();
          f->name += "." + expect_ident();
        }
        f->a = std::move(e);
        if (is_op("(")) parse_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        const Tok& t = next();
        auto f = make(EK::Test, t);
        if (is_name("not")) {
          next();
          f->negated = true;
        }
        f->name = expect_ident();
        while (is_op(".")) {
          next();
          f->name += "." + expect_ident();
        }
        f->a = std::move(e);
        const Tok& n = peek();
        if (is_op("(")) {
          parse_args(*f);
        } else if ((n.type == TT::Name && n.s != "else" && n.s != "or" && n.s != "and") ||
                   n.type == TT::String || n.type == TT::Int || n.type == TT::Float || is_op("[") ||
                   is_op("{")) {
          if (is_name("is")) fail_at(peek(), "You cannot chain multiple tests with is");
          f->items.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(f);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Tok> t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

std::shared_ptr<Program> parse(const std::string& source) {
  // jinja2 normalizes every line ending to "\n" and drops one trailing newline
  // (keep_trailing_newline=False).
  std::string src;
  src.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      src += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      src += source[k];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  Lexer lexer(src);
  Parser parser(lexer.run());
  auto prog = std::make_shared<Program>();
  prog->body = parser.parse_template();
  return prog;
}

}  // namespace lmf::tok::jinja
